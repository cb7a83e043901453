"""Frame tables (``pacs.dicom.frames``): every frame read through the table equals what pydicom
gives for the same file (``PixelData`` sliced for native data, ``generate_frames`` for
encapsulated data), over every pydicom and pydicom-data test file with pixel data the
bounded header parse accepts: native, JPEG baseline, JPEG 2000, JPEG-LS, RLE, deflated,
single- and multi-frame. Tables round-trip through their JSON form; odd input is refused
with a code.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pacs.dicom.deflate import inflated_file
from pacs.dicom.frames import (
    FramesUnavailable,
    FrameTable,
    frame_table,
    read_deflated_frames,
    read_frame,
)
from pacs.dicom.header import HeaderRejected, read_header_dataset
from pacs.dicom.structure import NATIVE_TRANSFER_SYNTAXES
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit

LIMITS = {"max_header_bytes": 64 << 20, "inflate_max_bytes": 256 << 20}
NAMED = {
    "native": "CT_small.dcm",
    "native multi-frame": "emri_small.dcm",
    "native rgb": "SC_rgb.dcm",
    "jpeg baseline": "SC_rgb_jpeg_dcmtk.dcm",
    "jpeg 2000": "JPEG2000.dcm",
    "jpeg 2000 multi-frame": "emri_small_jpeg_2k_lossless.dcm",
    "jpeg-ls": "MR_small_jpeg_ls_lossless.dcm",
    "rle": "MR_small_RLE.dcm",
    "rle multi-frame": "emri_small_RLE.dcm",
    "deflated": "image_dfl.dcm",
}


def pydicom_frames(ds: pydicom.Dataset, native: bool) -> list[bytes]:
    count = int(ds.get("NumberOfFrames") or 1)
    if not native:
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    size = get_expected_length(ds, unit="bytes") // count  # padding after the frames is not
    return [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]


def table_frames(data: bytes) -> tuple[FrameTable, list[bytes]]:
    header, ds = read_header_dataset(data, len(data), **LIMITS)
    table = frame_table(header, ds, io.BytesIO(data), len(data))
    source = (inflated_file(data, len(data), inflate_max_bytes=LIMITS["inflate_max_bytes"])
              if table.inflate else io.BytesIO(data))
    return table, [read_frame(source, table, n) for n in range(1, len(table.frames) + 1)]


@pytest.mark.parametrize("name", NAMED.values(), ids=list(NAMED))
def test_frames_equal_pydicom(name: str) -> None:
    # Arrange
    path = get_testdata_file(name)
    data = Path(path).read_bytes()

    # Act
    table, frames = table_frames(data)

    # Assert
    expected = pydicom_frames(pydicom.dcmread(path), table.native)
    assert frames == expected
    assert FrameTable.from_json(table.to_json()) == table
    if name == "image_dfl.dcm":
        assert table.inflate
        streamed = read_deflated_frames(io.BytesIO(data), len(data), table, [1],
                                        cap=LIMITS["inflate_max_bytes"])
        assert list(streamed) == expected


def test_deflated_frames_stream_within_the_cap() -> None:
    # Arrange: a deflated multi-frame file (pydicom's emri_small, deflated)
    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    header, parsed = read_header_dataset(data, len(data), **LIMITS)
    table = frame_table(header, parsed, None, len(data))
    expected = pydicom_frames(ds, True)

    # Act
    picked = list(read_deflated_frames(io.BytesIO(data), len(data), table, [10, 2, 2],
                                       cap=LIMITS["inflate_max_bytes"]))

    # Assert
    assert picked == [expected[9], expected[1], expected[1]]
    with pytest.raises(HeaderRejected) as err:
        list(read_deflated_frames(io.BytesIO(data), len(data), table, [10], cap=4096))
    assert err.value.code == "deflate_bomb"


def corpus() -> list[Path]:
    folders = {Path(get_testdata_file("CT_small.dcm")).parent,
               Path(get_testdata_file("emri_small_RLE.dcm")).parent}
    return sorted(p for folder in folders for p in folder.glob("*.dcm"))


def test_every_test_file_with_pixel_data() -> None:
    checked = 0
    for path in corpus():
        data = path.read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                header, _ = read_header_dataset(data, len(data), **LIMITS)
                reference = pydicom.dcmread(path)
                expected = pydicom_frames(reference, header.transfer_syntax_uid
                                          in NATIVE_TRANSFER_SYNTAXES)
            except (HeaderRejected, AttributeError, ValueError):
                continue  # refused by our parse, no pixel data, or unreadable by pydicom
        if header.pixel_data_offset is None:
            continue
        table, frames = table_frames(data)
        assert frames == expected, path.name
        checked += 1
    assert checked > 100


def test_fragments_without_offset_table_are_split_at_frame_starts() -> None:
    # Arrange: three JPEG frames, two fragments each, no Basic Offset Table.
    base = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    frame = next(generate_frames(base.PixelData, number_of_frames=1))
    frames = [frame, frame[:-2] + b"\x00\xd9", frame]
    base.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=False)
    base.NumberOfFrames = 3
    base.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    out = io.BytesIO()
    base.save_as(out, enforce_file_format=True)

    # Act
    _, got = table_frames(out.getvalue())

    # Assert
    assert got == frames


def test_no_pixel_data_is_refused() -> None:
    data = Path(get_testdata_file("rtplan.dcm")).read_bytes()
    header, ds = read_header_dataset(data, len(data), **LIMITS)
    with pytest.raises(FramesUnavailable) as err:
        frame_table(header, ds, io.BytesIO(data), len(data))
    assert err.value.code == "no_pixel_data"


def test_truncated_fragment_items_are_corrupt() -> None:
    data = Path(get_testdata_file("JPEG2000.dcm")).read_bytes()
    header, ds = read_header_dataset(data, len(data), **LIMITS)
    cut = data[:header.pixel_data_offset + 20]
    with pytest.raises(FramesUnavailable) as err:
        frame_table(header, ds, io.BytesIO(cut), len(cut))
    assert err.value.code == "corrupt"


def test_frame_numbers_count_from_one() -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    header, ds = read_header_dataset(data, len(data), **LIMITS)
    table = frame_table(header, ds, None, len(data))
    with pytest.raises(IndexError):
        read_frame(io.BytesIO(data), table, 0)
    with pytest.raises(IndexError):
        read_frame(io.BytesIO(data), table, 2)
