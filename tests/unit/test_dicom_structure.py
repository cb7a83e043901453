"""Hostile structure in untrusted DICOM headers (``pacs.dicom.structure`` and
``pacs.dicom.bounded``): sequences nested deep, undefined lengths never closed, declared
lengths far past the file (never allocated), items running past their sequence, floods of
elements, and pixel data shorter than declared or than the image needs. Files are built
byte by byte (``tests/dicom_builders.py``).
"""

from __future__ import annotations

import io
import struct

import pytest
from pacs.dicom.header import HeaderRejected, read_header

from tests.dicom_builders import (
    IMPLICIT_LE,
    LIMITS,
    el,
    identity,
    image,
    implicit_el,
    nested_defined,
    nested_undefined,
    padded,
    part10,
    read_bytes,
    read_path,
    rejection,
    text,
)
from tests.dicom_corpus import corpus_file


@pytest.mark.parametrize("depth", [5, 40])
def test_moderate_nesting_is_accepted(depth: int) -> None:
    # Arrange
    undefined = part10(identity() + nested_undefined(depth) + image())
    defined = part10(identity() + nested_defined(depth) + image())

    # Act / Assert
    assert read_bytes(undefined).is_image
    assert read_bytes(defined).is_image


@pytest.mark.parametrize("builder", [nested_undefined, nested_defined])
def test_sequences_nested_300_deep_are_corrupt(builder) -> None:
    # Arrange
    data = part10(identity() + builder(300) + image())

    # Act
    error = rejection(data)

    # Assert
    assert error.code == "corrupt"


def test_sequences_nested_5000_deep_do_not_crash() -> None:
    # Arrange
    data = part10(identity() + nested_undefined(5000) + image())

    # Act / Assert
    assert rejection(data).code == "corrupt"


def test_undefined_length_value_without_delimiter_is_corrupt() -> None:
    # Arrange: an OB of undefined length that is never closed
    data = part10(identity() + el(0x00091010, "OB", b"\x01\x02" * 50, length=0xFFFFFFFF))

    # Act / Assert
    assert rejection(data).code == "corrupt"


def test_undefined_length_sequence_without_delimiter_is_corrupt() -> None:
    # Arrange
    sequence = (struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<L", 0xFFFFFFFF)
                + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
                + el(0x0040A160, "UT", padded("open")))
    data = part10(identity() + sequence)

    # Act / Assert
    assert rejection(data).code == "corrupt"


class RecordingFile(io.BytesIO):
    """Remembers the largest read it was asked for."""

    largest = 0

    def read(self, n: int | None = -1) -> bytes:
        self.largest = max(self.largest, -1 if n is None else n)
        return super().read(n)


@pytest.mark.parametrize("implicit", [False, True])
def test_huge_declared_value_length_is_corrupt_without_allocating_it(implicit: bool) -> None:
    # Arrange: a normal text element declaring 0xFFFFFFF0 bytes
    if implicit:
        body = b"".join([
            implicit_el(0x00080018, text("1.2.3.4.5")),
            implicit_el(0x00100020, b"ID", length=0xFFFFFFF0),
            implicit_el(0x0020000D, text("1.2.3")),
            implicit_el(0x0020000E, text("1.2.3.4")),
        ])
        data = part10(body, IMPLICIT_LE)
    else:
        data = part10(identity() + el(0x0040A160, "UT", b"text", length=0xFFFFFFF0) + image())
    f = RecordingFile(data)

    # Act
    with pytest.raises(HeaderRejected) as info:
        read_header(f, len(data), **LIMITS)

    # Assert
    assert info.value.code == "corrupt"
    assert f.largest <= len(data)


def test_huge_declared_sequence_length_is_corrupt() -> None:
    # Arrange
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 8) + el(0x0040A160, "UT", b"ab")
    data = part10(identity() + el(0x0040A730, "SQ", item, length=0xFFFFFFF0))

    # Act / Assert
    assert rejection(data).code == "corrupt"


def test_item_value_running_past_its_sequence_is_corrupt() -> None:
    # Arrange: a defined-length sequence whose item declares more than the sequence holds
    inner = el(0x0040A160, "UT", b"abcd", length=400)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
    data = part10(identity() + el(0x0040A730, "SQ", item) + image())

    # Act / Assert
    assert rejection(data).code == "corrupt"


def test_element_count_is_capped() -> None:
    # Arrange: 50 000 empty private elements
    flood = b"".join(struct.pack("<HH2sH", 0x0009, i % 0xFFFF + 1, b"LO", 0)
                     for i in range(50_000))
    data = part10(identity() + flood + image())

    # Act
    error = rejection(data, max_elements=10_000)

    # Assert
    assert error.code == "too_large"
    assert read_bytes(data, max_elements=100_000).is_image


def test_element_count_is_capped_inside_defined_length_sequences() -> None:
    # Arrange: a defined-length sequence item holding 30 000 elements
    inner = b"".join(struct.pack("<HH2sH", 0x0009, i + 1, b"LO", 0) for i in range(30_000))
    item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
    data = part10(identity() + el(0x0040A730, "SQ", item) + image())

    # Act / Assert
    assert rejection(data, max_elements=10_000).code == "too_large"


# --------------------------------------------------------------------------- pixel data

@pytest.mark.parametrize("keep", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("name", ["693_UNCI.dcm", "emri_small_RLE.dcm",
                                  "MR_small_jp2klossless.dcm", "JPEG-LL.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_corpus_file_truncated_in_pixel_data_is_rejected(name: str, keep: float) -> None:
    # Arrange: cut inside the pixel data value (files may carry bytes after it)
    header = read_path(corpus_file(name))
    data = corpus_file(name).read_bytes()
    offset, length = header.pixel_data_offset, header.pixel_data_length
    present = len(data) - offset if length == 0xFFFFFFFF else length
    cut = data[: offset + int(present * keep) + 1]

    # Act
    error = rejection(cut)

    # Assert
    assert error.code == "truncated_pixel_data"


def test_native_pixel_data_shorter_than_image_is_truncated() -> None:
    # Arrange: 4x4 8-bit image with only 10 bytes of pixels (declared honestly)
    data = part10(identity() + image(pixel_bytes=bytes(10)))

    # Act / Assert
    assert rejection(data).code == "truncated_pixel_data"


def test_pixel_length_beyond_file_is_truncated() -> None:
    # Arrange
    data = part10(identity() + image(declared=4096))

    # Act / Assert
    assert rejection(data).code == "truncated_pixel_data"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "693_UNCI.dcm",
                                  "unordered"])
def test_structure_walk_sees_the_elements_pydicom_lists(name: str) -> None:
    """The checks take each dataset's elements from its dict: the same elements, in the same
    (tag) order, as pydicom's ``Dataset.elements()``, also for a file written out of order."""
    from pacs.dicom.structure import _elements
    from pydicom import dcmread

    data = (part10(el(0x00280010, "US", struct.pack("<H", 4)) + identity()
                   + el(0x00080060, "CS", padded("OT")))
            if name == "unordered" else corpus_file(name).read_bytes())
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    nested = [item for elem in ds.elements() if elem.VR == "SQ" for item in ds[elem.tag].value]

    for dataset in [ds, *nested]:
        assert _elements(dataset) == list(dataset.elements())
    assert [elem.tag for elem in _elements(ds)] == sorted(ds.keys())
