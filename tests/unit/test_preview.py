"""Preview rendering against an independent pydicom + numpy rendering, and slice choice."""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import random
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pacs.dicom.header import HeaderRejected, InstanceHeader, read_header
from pacs.indexing.preview import (
    PreviewFailed,
    middle_instance,
    preview_frame_index,
    preview_media_type,
    render_preview,
)
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from tests.dicom_corpus import corpus, corpus_file

LIMITS = {"max_header_bytes": 64 * 1024**2, "inflate_max_bytes": 256 * 1024**2}
MIN_CORRELATION = 0.9
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


def header_of(path: Path) -> InstanceHeader:
    with open(path, "rb") as f:
        return read_header(f, os.path.getsize(path), **LIMITS)


@functools.cache
def accepted_images() -> dict[str, tuple[Path, InstanceHeader]]:
    """Every corpus file whose header is accepted and that is an image."""
    found = {}
    for name, path in corpus().items():
        try:
            header = header_of(path)
        except HeaderRejected:
            continue
        if header.is_image:
            found[name] = (path, header)
    return found


# --------------------------------------------------------------------------- reference


def _first(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, MultiValue | list):
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@functools.cache
def reference_for(path: Path, frame: int) -> Image.Image:
    """:func:`reference_frame` of a corpus file, computed once per test session."""
    return reference_frame(read_reference(path), frame)


def reference_frame(ds: Dataset, frame: int) -> Image.Image:
    """The frame rendered with pydicom's full-dataset decoding plus numpy, independently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = ds.pixel_array  # all frames, pydicom's default YBR -> RGB conversion
    if int(ds.get("NumberOfFrames") or 1) > 1:
        arr = arr[frame]
    photometric = ds.PhotometricInterpretation
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds).astype(float)
        top = 255.0 if rgb.dtype == np.uint8 or rgb.max() <= 255 else 65535.0
        return Image.fromarray((rgb / top * 255).astype(np.uint8), "RGB")
    if arr.ndim == 3:
        top = 2 ** int(ds.BitsStored) - 1
        return Image.fromarray((arr.astype(float) / top * 255).astype(np.uint8), "RGB")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    values = arr.astype(float) * slope + intercept
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width and width > 0:
        low, high = center - width / 2, center + width / 2
    else:
        low, high = np.percentile(values, [1, 99])
    high = max(high, low + 1)
    grey = np.clip((values - low) / (high - low), 0, 1) * 255
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey.astype(np.uint8), "L")


def as_grey(picture: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(picture.convert("L").resize(size, Image.Resampling.BILINEAR), float)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def resembles(preview: np.ndarray, reference: np.ndarray) -> bool:
    """The acceptance check: correlated with the reference and not a flat image."""
    return correlation(preview, reference) >= MIN_CORRELATION and preview.std() >= MIN_STD


def decode(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def read_reference(path_or_bytes) -> Dataset:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(source)


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
    header = header_of(path)
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
    header = header_of(path)
    preview = decode(render_preview(path.read_bytes(), header))
    reference = as_grey(reference_frame(read_reference(path), 0), preview.size)
    grey_square = np.full_like(reference, 128.0)
    noisy_square = grey_square + np.random.default_rng(1).normal(0, 0.5, grey_square.shape)

    # Act / Assert
    assert resembles(as_grey(preview, preview.size), reference)
    assert not resembles(grey_square, reference)
    assert not resembles(noisy_square, reference)


def test_output_is_png_for_grey_and_jpeg_for_colour() -> None:
    # Arrange
    grey_path, colour_path = corpus_file("693_UNCI.dcm"), corpus_file("OBXXXX1A.dcm")

    # Act
    grey = render_preview(grey_path.read_bytes(), header_of(grey_path))
    colour = render_preview(colour_path.read_bytes(), header_of(colour_path), size=128)

    # Assert
    assert preview_media_type(grey) == "image/png"
    assert decode(grey).mode == "L" and decode(grey).size == (256, 256)
    assert preview_media_type(colour) == "image/jpeg"
    assert decode(colour).mode == "RGB" and decode(colour).size == (128, 96)  # 800x600


# --------------------------------------------------------------------------- multi-frame


def synthetic(frames: list[np.ndarray], *, photometric: str = "MONOCHROME2",
              extra: dict | None = None, ts: str = ExplicitVRLittleEndian) -> bytes:
    """A multi-frame secondary capture image built with pydicom."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (
        generate_uid(), generate_uid(), generate_uid())
    ds.Modality = "OT"
    stack = np.stack(frames)
    ds.Rows, ds.Columns = stack.shape[1:3]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8 * stack.dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = len(frames)
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    ds.PixelData = stack.tobytes()
    if ts != ExplicitVRLittleEndian:
        ds.compress(ts)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def distinct_frames(count: int, size: int = 64) -> list[np.ndarray]:
    """Frames that do not correlate with each other: a bar at a different place in each."""
    frames = []
    for i in range(count):
        frame = np.zeros((size, size), np.uint8)
        start = i * size // count
        frame[:, start:start + size // count] = 250
        frame[start:start + size // count, :] = 120
        frames.append(frame)
    return frames


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, RLELossless])
def test_multiframe_preview_shows_the_middle_frame(ts: str) -> None:
    # Arrange
    frames = distinct_frames(5)
    data = synthetic(frames, ts=ts)
    header = read_header(data, len(data), **LIMITS)

    # Act
    preview = decode(render_preview(data, header))

    # Assert
    actual = as_grey(preview, preview.size)
    scores = [correlation(actual, as_grey(Image.fromarray(f), preview.size)) for f in frames]
    assert header.fields["NumberOfFrames"] == 5 and preview_frame_index(5) == 2
    assert scores.index(max(scores)) == 2 and scores[2] >= MIN_CORRELATION, scores


def test_corpus_multiframe_preview_is_the_middle_frame() -> None:
    # Arrange: a 10-frame MR whose frames differ
    path = corpus_file("emri_small.dcm")
    header = header_of(path)
    ds = read_reference(path)

    # Act
    preview = decode(render_preview(path.read_bytes(), header))

    # Assert
    actual = as_grey(preview, preview.size)
    middle = correlation(actual, as_grey(reference_frame(ds, 5), preview.size))
    first = correlation(actual, as_grey(reference_frame(ds, 0), preview.size))
    assert middle >= MIN_CORRELATION and middle > first


# --------------------------------------------------------------------------- rendering rules


def test_window_from_header_is_applied() -> None:
    # Arrange: a 16-bit ramp 0..999 with window 500/200 -> values <= 400 black, >= 600 white
    ramp = np.tile(np.linspace(0, 999, 256).astype(np.uint16), (256, 1))
    data = synthetic([ramp], extra={"WindowCenter": [500, 100], "WindowWidth": [200, 50]})
    header = read_header(data, len(data), **LIMITS)

    # Act
    preview = np.asarray(decode(render_preview(data, header)), float)

    # Assert
    assert preview[:, :90].max() == 0  # 0..350
    assert preview[:, 170:].min() == 255  # 666..999
    assert 100 < preview[128, 128] < 155  # ~500 -> mid grey


def test_rescale_then_window() -> None:
    # Arrange: stored 0..999, rescaled to -1000..998 HU, lung window would be all black here
    ramp = np.tile(np.linspace(0, 999, 256).astype(np.uint16), (256, 1))
    data = synthetic([ramp], extra={"RescaleSlope": 2, "RescaleIntercept": -1000,
                                    "WindowCenter": 0, "WindowWidth": 400})
    header = read_header(data, len(data), **LIMITS)

    # Act
    preview = np.asarray(decode(render_preview(data, header)), float)

    # Assert: -200 HU (stored 400) black, +200 HU (stored 600) white
    assert preview[:, :95].max() == 0 and preview[:, 160:].min() == 255


def test_monochrome1_is_inverted() -> None:
    # Arrange
    ramp = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    mono2 = synthetic([ramp])
    mono1 = synthetic([ramp], photometric="MONOCHROME1")

    # Act
    dark_left = np.asarray(decode(render_preview(mono2, read_header(mono2, len(mono2),
                                                                     **LIMITS))), float)
    bright_left = np.asarray(decode(render_preview(mono1, read_header(mono1, len(mono1),
                                                                      **LIMITS))), float)

    # Assert
    assert dark_left[:, :20].mean() < 30 and dark_left[:, -20:].mean() > 225
    assert bright_left[:, :20].mean() > 225 and bright_left[:, -20:].mean() < 30


def test_non_image_objects_have_no_preview() -> None:
    for name in ("test-SR.dcm", "rtplan.dcm", "waveform_ecg.dcm", "reportsi.dcm"):
        # Arrange
        path = corpus_file(name)
        header = header_of(path)

        # Act
        with pytest.raises(PreviewFailed) as info:
            render_preview(path.read_bytes(), header)

        # Assert
        assert header.is_image is False and header.has_pixel_data is False
        assert info.value.code == "not_image"


def test_corrupt_compressed_pixel_data_fails_narrowly() -> None:
    # Arrange: JPEG 2000 and JPEG-LS codestreams overwritten with noise
    rng = random.Random(7)
    for name in ("MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "JPEG-LL.dcm", "MR_small_RLE.dcm"):
        path = corpus_file(name)
        header = header_of(path)
        data = bytearray(path.read_bytes())
        start = header.pixel_data_offset + 40
        for i in range(start, len(data) - 16):
            data[i] = rng.randrange(256)

        # Act
        try:
            result = render_preview(bytes(data), header)
        except PreviewFailed as err:
            result = err.code

        # Assert: either a failure code or some picture, never another exception
        assert result == "undecodable" or isinstance(result, bytes)


def test_header_and_file_disagreeing_fails_narrowly() -> None:
    # Arrange: the header of a big CT with the bytes of a truncated copy
    path = corpus_file("693_UNCI.dcm")
    header = header_of(path)
    data = path.read_bytes()[: header.pixel_data_offset + 1000]

    # Act
    with pytest.raises(PreviewFailed) as info:
        render_preview(data, header)

    # Assert
    assert info.value.code == "undecodable"


def test_oversized_frame_is_refused_before_decoding() -> None:
    # Arrange
    path = corpus_file("CT_small.dcm")
    header = header_of(path)
    huge = dataclasses.replace(header, fields={**header.fields, "Rows": 65535,
                                               "Columns": 65535})

    # Act
    with pytest.raises(PreviewFailed) as info:
        render_preview(path.read_bytes(), huge)

    # Assert
    assert info.value.code == "too_large"


# --------------------------------------------------------------------------- middle slice


def slice_fields(number: int, z: float | None, *, orientation=None, location=None) -> dict:
    return {
        "SOPInstanceUID": f"1.2.{number}",
        "InstanceNumber": number,
        "ImagePositionPatient": None if z is None else [0.0, 0.0, z],
        "ImageOrientationPatient": orientation or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        "SliceLocation": location,
    }


def test_middle_instance_sorts_by_position_along_the_normal() -> None:
    # Arrange: instance numbers run against the geometry, input shuffled
    slices = [slice_fields(number=10 - i, z=i * 2.5) for i in range(9)]
    shuffled = slices[:]
    random.Random(3).shuffle(shuffled)

    # Act
    middle = middle_instance(shuffled)

    # Assert
    assert middle["ImagePositionPatient"][2] == 10.0  # z values 0..20 -> 10
    assert middle["InstanceNumber"] == 6


def test_middle_instance_handles_oblique_slices() -> None:
    # Arrange: sagittal-oblique stack stepping along x; z goes the other way
    orientation = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # normal = (-1, 0, 0)
    slices = []
    for i in range(5):
        fields = slice_fields(number=i + 1, z=None, orientation=orientation)
        fields["ImagePositionPatient"] = [float(i * 3), 0.0, float(-i)]
        slices.append(fields)

    # Act
    middle = middle_instance(list(reversed(slices)))

    # Assert
    assert middle["ImagePositionPatient"][0] == 6.0


def test_middle_instance_falls_back_to_slice_location_then_instance_number() -> None:
    # Arrange
    by_location = [slice_fields(number=n, z=None, location=float(-n * 5)) for n in range(1, 8)]
    by_number = [slice_fields(number=n, z=None) for n in (7, 3, 5, 1, 2, 6, 4)]
    one_missing = by_location[:]
    one_missing[0] = {**one_missing[0], "SliceLocation": None}

    # Act / Assert
    assert middle_instance(by_location)["SliceLocation"] == -20.0
    assert middle_instance(by_number)["InstanceNumber"] == 4
    assert middle_instance(one_missing)["InstanceNumber"] == 4
    assert middle_instance([by_number[0]]) is by_number[0]
    with pytest.raises(ValueError):
        middle_instance([])


def test_middle_instance_accepts_header_fields() -> None:
    # Arrange: the CT slices of pydicom's DICOMDIR test tree
    paths = sorted(p for name, p in corpus().items() if "/CT5N/" in name)
    fields = [header_of(p).fields for p in paths]
    positions = sorted(f["ImagePositionPatient"][2] for f in fields)

    # Act
    middle = middle_instance(fields)

    # Assert
    assert len(fields) == 5
    assert middle["ImagePositionPatient"][2] == positions[2]
