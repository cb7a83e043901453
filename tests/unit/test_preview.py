"""Preview rendering (``pacs.indexing.preview``): grey images as PNG and colour as JPEG,
the middle frame of a multi-frame image, the window and rescale from the header,
MONOCHROME1 inverted, and narrow failures (not an image, corrupt pixel data, a header that
disagrees with the file, an oversized frame).

Every corpus image against the independent reference: ``test_preview_corpus.py``; the
middle slice of a series: ``test_preview_middle_slice.py``.
"""

from __future__ import annotations

import dataclasses
import io
import random

import numpy as np
import pytest
from pacs.dicom.header import read_header
from pacs.indexing.preview import (
    PreviewFailed,
    preview_frame_index,
    preview_media_type,
    render_preview,
)
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from tests.dicom_builders import LIMITS, read_path
from tests.dicom_corpus import corpus_file
from tests.preview_helpers import (
    MIN_CORRELATION,
    as_grey,
    correlation,
    decode,
    read_reference,
    reference_frame,
)


def test_output_is_png_for_grey_and_jpeg_for_colour() -> None:
    # Arrange
    grey_path, colour_path = corpus_file("693_UNCI.dcm"), corpus_file("OBXXXX1A.dcm")

    # Act
    grey = render_preview(grey_path.read_bytes(), read_path(grey_path))
    colour = render_preview(colour_path.read_bytes(), read_path(colour_path), size=128)

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
    header = read_path(path)
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
        header = read_path(path)

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
        header = read_path(path)
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
    header = read_path(path)
    data = path.read_bytes()[: header.pixel_data_offset + 1000]

    # Act
    with pytest.raises(PreviewFailed) as info:
        render_preview(data, header)

    # Assert
    assert info.value.code == "undecodable"


def test_oversized_frame_is_refused_before_decoding() -> None:
    # Arrange
    path = corpus_file("CT_small.dcm")
    header = read_path(path)
    huge = dataclasses.replace(header, fields={**header.fields, "Rows": 65535,
                                               "Columns": 65535})

    # Act
    with pytest.raises(PreviewFailed) as info:
        render_preview(path.read_bytes(), huge)

    # Assert
    assert info.value.code == "too_large"
