"""Preview rendering (``pacs.indexing.preview``) against an independent pydicom + numpy
rendering (``tests/preview_helpers.py``): one image of each transfer syntax and every
accepted corpus image look like the reference (or fail as undecodable where pydicom
cannot decode them either), and the check itself fails a flat grey square.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from pacs.dicom.header import HeaderRejected, InstanceHeader
from pacs.indexing.preview import PreviewFailed, preview_frame_index, render_preview
from PIL import Image
from pydicom.uid import generate_uid

from tests.dicom_builders import read_path
from tests.dicom_corpus import corpus, corpus_file
from tests.preview_helpers import (
    MIN_CORRELATION,
    as_grey,
    correlation,
    decode,
    read_reference,
    reference_frame,
)

MIN_STD = 5.0  # grey levels; a flat grey square has 0


TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.5": "RLE Lossless",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
}


@functools.cache
def reference_for(path: Path, frame: int) -> Image.Image:
    """:func:`reference_frame` of a corpus file, computed once per test session."""
    return reference_frame(read_reference(path), frame)


@functools.cache
def accepted_images() -> dict[str, tuple[Path, InstanceHeader]]:
    """Every corpus file whose header is accepted and that is an image."""
    found = {}
    for name, path in corpus().items():
        try:
            header = read_path(path)
        except HeaderRejected:
            continue
        if header.is_image:
            found[name] = (path, header)
    return found


def resembles(preview: np.ndarray, reference: np.ndarray) -> bool:
    """The acceptance check: correlated with the reference and not a flat image."""
    return correlation(preview, reference) >= MIN_CORRELATION and preview.std() >= MIN_STD


def with_uids(path: Path, tmp_path: Path) -> Path:
    """A copy of a corpus file given the UIDs it lacks (for syntaxes only such files use)."""
    ds = read_reference(path)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if not ds.get(keyword):
            setattr(ds, keyword, generate_uid())
    out = tmp_path / path.name
    ds.save_as(out, enforce_file_format=True)
    return out


def pick(ts: str, tmp_path: Path) -> Path | None:
    """The first accepted corpus image in this transfer syntax with real content."""
    for name in sorted(accepted_images()):
        path, header = accepted_images()[name]
        if header.transfer_syntax_uid != ts:
            continue
        try:
            reference = reference_for(path, preview_frame_index(header.fields["NumberOfFrames"]))
        except Exception:  # noqa: BLE001 - pydicom cannot decode it either: try the next
            continue
        if np.asarray(reference.convert("L"), float).std() > 10:
            return path
    # Syntaxes whose corpus files all lack UIDs (JPEG-LS near-lossless): patch a copy.
    for path in sorted(corpus().values()):
        if path.suffix == ".dcm":
            try:
                ds = read_reference(path)
            except Exception:  # noqa: BLE001 - not DICOM
                continue
            if ds.file_meta.get("TransferSyntaxUID") == ts and "PixelData" in ds:
                return with_uids(path, tmp_path)
    return None


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("ts", sorted(TRANSFER_SYNTAXES), ids=TRANSFER_SYNTAXES.get)
def test_preview_matches_reference_for_each_transfer_syntax(ts: str, tmp_path: Path) -> None:
    # Arrange
    path = pick(ts, tmp_path)
    assert path is not None, f"no corpus file for {TRANSFER_SYNTAXES[ts]}"
    header = read_path(path)
    frame = preview_frame_index(header.fields["NumberOfFrames"])

    # Act
    with open(path, "rb") as f:
        preview = decode(render_preview(f, header))

    # Assert
    assert header.transfer_syntax_uid == ts
    reference = as_grey(reference_for(path, frame), preview.size)
    actual = as_grey(preview, preview.size)
    assert resembles(actual, reference), (path.name, correlation(actual, reference))
    assert max(preview.size) == 256


def _corpus_image_ids() -> list[str]:
    return sorted(accepted_images())


@pytest.mark.parametrize("name", _corpus_image_ids())
def test_every_corpus_image_previews_like_pydicom(name: str) -> None:
    # Arrange
    path, header = accepted_images()[name]
    frame = preview_frame_index(header.fields["NumberOfFrames"])
    try:
        reference = reference_for(path, frame)
    except Exception:  # noqa: BLE001 - pydicom cannot decode it: neither may we
        reference = None

    # Act
    try:
        preview, error = decode(render_preview(path.read_bytes(), header)), None
    except PreviewFailed as err:
        preview, error = None, err

    # Assert
    if reference is None:
        assert error is not None and error.code == "undecodable"
        return
    assert error is None
    expected = as_grey(reference, preview.size)
    actual = as_grey(preview, preview.size)
    if expected.std() < 1:  # a flat reference (e.g. a window outside the data range)
        assert actual.std() < 2
    else:
        assert correlation(actual, expected) >= MIN_CORRELATION


def test_flat_grey_square_fails_the_check() -> None:
    # Arrange
    path = corpus_file("CT_small.dcm")
    header = read_path(path)
    preview = decode(render_preview(path.read_bytes(), header))
    reference = as_grey(reference_frame(read_reference(path), 0), preview.size)
    grey_square = np.full_like(reference, 128.0)
    noisy_square = grey_square + np.random.default_rng(1).normal(0, 0.5, grey_square.shape)

    # Act / Assert
    assert resembles(as_grey(preview, preview.size), reference)
    assert not resembles(grey_square, reference)
    assert not resembles(noisy_square, reference)
