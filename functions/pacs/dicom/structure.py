"""Structural checks of a DICOM header read from an untrusted file.

pydicom parses what it is given and leaves much unchecked: defined-length sequences are
parsed only when accessed, a value may be shorter than its declared length, and the pixel
data (never read into memory here) may be cut short. These checks, run by
:func:`pacs.dicom.header.read_header`, walk every nested dataset within the element budget
and check the pixel data by its declared length and, when encapsulated, by its fragment
headers. Failures raise :class:`~pacs.dicom.errors.HeaderRejected`.
"""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_offset_to_value, read_sequence
from pydicom.hooks import hooks
from pydicom.sequence import Sequence
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from pacs.dicom.bounded import BoundedReader, Budget
from pacs.dicom.deflate import DEFLATED
from pacs.dicom.errors import HeaderRejected
from pacs.dicom.fields import PIXEL_TAGS, as_int, as_text, element_value

#: Transfer syntaxes whose pixel data is native (not encapsulated).
NATIVE_TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired)
    DEFLATED,
})
ITEM_TAG = 0xFFFEE000
SEQUENCE_DELIMITER_TAG = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF

#: Deepest sequence nesting accepted (real objects stay far below; SR trees reach ~10).
MAX_SEQUENCE_DEPTH = 64
#: Most fragments walked in encapsulated pixel data (one 8-byte read each).
MAX_FRAGMENTS = 1_000_000


def check_raw_lengths(ds: Dataset) -> None:
    """Reject raw elements whose value is shorter than their declared length."""
    _check_lengths(_elements(ds))


def validate_structure(ds: Dataset, budget: Budget, max_elements: int) -> None:
    """Walk every nested dataset once: value lengths, sequence parsing, depth, counts.

    pydicom parses defined-length sequences lazily; here they are parsed (through a
    counting reader, so their elements draw on the same budget) and dropped again.
    """
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    count = 0
    while stack:
        current, depth = stack.pop()
        if depth > MAX_SEQUENCE_DEPTH:
            raise HeaderRejected("corrupt")
        elements = _elements(current)
        _check_lengths(elements)
        for elem in elements:
            count += 1
            if count > max_elements:
                raise HeaderRejected("too_large")
            items: Sequence | list[Dataset]
            if isinstance(elem, RawDataElement):
                if not elem.value or _raw_vr(elem, current) != "SQ":
                    continue
                value = bytes(elem.value)
                items = read_sequence(
                    BoundedReader(io.BytesIO(value), limit=len(value), size=len(value),
                                  budget=budget),
                    elem.is_implicit_VR, elem.is_little_endian, len(value),
                    current.original_character_set, elem.value_tell,
                )
            elif elem.VR == "SQ" and isinstance(elem.value, Sequence | list):
                items = elem.value
            else:
                continue
            stack.extend((item, depth + 1) for item in items)


def _elements(ds: Dataset) -> list[Any]:
    """``ds.elements()`` (its elements in tag order, raw ones left raw) at a fraction of
    the cost: tags sorted as ints, each element taken from the dataset's dict (a deferred
    one through ``get_item``, as pydicom does; the header reader defers none)."""
    found = ds._dict
    out = []
    for tag in sorted(found, key=int):
        elem = found[tag]
        if type(elem) is RawDataElement and elem.value is None:
            elem = ds.get_item(tag)
        out.append(elem)
    return out


def _check_lengths(elements: list[Any]) -> None:
    for elem in elements:
        if (
            isinstance(elem, RawDataElement)
            and elem.length != UNDEFINED_LENGTH
            and isinstance(elem.value, bytes)
            and len(elem.value) != elem.length
        ):
            raise HeaderRejected("corrupt")


def _raw_vr(elem: RawDataElement, ds: Dataset) -> str | None:
    if elem.VR is not None and elem.VR != "UN":
        return elem.VR  # explicit VR: what pydicom's lookup hook returns for it
    data: dict[str, Any] = {}
    hooks.raw_element_vr(elem, data, encoding=ds.original_character_set, ds=ds)
    return data.get("VR")


def pixel_element_at(
    data: BoundedReader, is_implicit: bool, is_little: bool
) -> tuple[int, int, int] | None:
    """If ``data`` is positioned at a pixel data element, return (tag, value offset, length).

    Leaves ``data`` where it was otherwise. Mirrors pydicom's element header parsing,
    including its fallback to implicit VR for non-alphabetic VR bytes.
    """
    start = data.tell()
    header = data.read(8)
    if len(header) < 8:
        data.seek(start)
        return None
    e = "<" if is_little else ">"
    group, elem = struct.unpack(f"{e}HH", header[:4])
    tag = group << 16 | elem
    if tag not in PIXEL_TAGS:
        data.seek(start)
        return None
    raw_vr = header[4:6]
    if is_implicit or not (b"AA" <= raw_vr <= b"ZZ"):
        (length,) = struct.unpack(f"{e}L", header[4:8])
        offset = data_element_offset_to_value(True, None)
    else:
        vr = raw_vr.decode("ascii")
        if vr in EXPLICIT_VR_LENGTH_32:
            extra = data.read(4)
            if len(extra) < 4:
                raise HeaderRejected("too_large" if data.hit_limit else "truncated_pixel_data")
            (length,) = struct.unpack(f"{e}L", extra)
        else:
            (length,) = struct.unpack(f"{e}H", header[6:8])
        offset = data_element_offset_to_value(False, vr)
    data.seek(start)
    return tag, start + offset, length


def check_pixel_data(
    ds: Dataset,
    fields: dict[str, Any],
    transfer_syntax: str,
    pixel: tuple[int, int, int],
    data_size: int,
    raw_source: BinaryIO | None,
    is_little: bool,
) -> None:
    """Reject pixel data (found by :func:`pixel_element_at`) shorter than it should be.

    A defined length must fit in the ``data_size`` bytes of the dataset and, for native
    images, hold Rows x Columns x Samples x Bits x Frames. An undefined length is only
    valid for encapsulated syntaxes; its fragments are walked in ``raw_source`` (the file
    itself; None for a deflated dataset, which is native).
    """
    _tag, value_start, length = pixel
    native = transfer_syntax in NATIVE_TRANSFER_SYNTAXES
    if length == UNDEFINED_LENGTH:
        if native or raw_source is None:
            raise HeaderRejected("corrupt")
        _check_fragments(raw_source, value_start, data_size, is_little)
        return
    if length > data_size - value_start:
        raise HeaderRejected("truncated_pixel_data")
    if native and fields["is_image"]:
        expected = _expected_native_length(ds, fields)
        if expected is not None and length < expected:
            raise HeaderRejected("truncated_pixel_data")


def _check_fragments(fileobj: BinaryIO, start: int, end: int, is_little: bool) -> None:
    """Walk encapsulated pixel data items up to the sequence delimiter (headers only)."""
    fmt = "<HHL" if is_little else ">HHL"
    pos = start
    for _ in range(MAX_FRAGMENTS):
        if pos + 8 > end:
            raise HeaderRejected("truncated_pixel_data")
        fileobj.seek(pos)
        header = fileobj.read(8)
        if len(header) < 8:
            raise HeaderRejected("truncated_pixel_data")
        group, elem, length = struct.unpack(fmt, header)
        tag = group << 16 | elem
        if tag == SEQUENCE_DELIMITER_TAG:
            return
        if tag != ITEM_TAG or length == UNDEFINED_LENGTH:
            raise HeaderRejected("corrupt")
        pos += 8 + length
        if pos > end:
            raise HeaderRejected("truncated_pixel_data")
    raise HeaderRejected("too_large")


def _expected_native_length(ds: Dataset, fields: dict[str, Any]) -> int | None:
    """Bytes of native pixel data that Rows x Columns x Samples x Bits x Frames implies."""
    bits = as_int(element_value(ds, "BitsAllocated"))
    samples = as_int(element_value(ds, "SamplesPerPixel"))
    if samples is None:
        samples = 1
    if bits is None or bits <= 0 or samples <= 0:
        return None
    frames = fields["NumberOfFrames"] or 1
    rows, columns = fields["Rows"], fields["Columns"]
    photometric = as_text(element_value(ds, "PhotometricInterpretation"))
    per_pixel = 2 if photometric == "YBR_FULL_422" and samples == 3 else samples
    return (rows * columns * frames * per_pixel * bits + 7) // 8
