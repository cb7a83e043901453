"""Read the header of an uploaded (untrusted) DICOM Part 10 file, in bounded memory and time.

Uploads are hostile. :func:`read_header` never uses ``force=True``, never lets pydicom read
more than ``max_header_bytes`` of the file, inflates deflated datasets itself with a hard cap,
counts the data elements it lets pydicom create, and turns every parse failure into a
:class:`HeaderRejected` with a stable ``code`` and a plain-language message of its own
(exception text from a parser can quote the file, i.e. patient data, so it is never used).

Rejection codes:

``not_dicom``
    No 128-byte preamble + ``DICM`` prefix, no File Meta Information group, or no
    (0002,0010) Transfer Syntax UID in it.
``missing_uid``
    Study, Series or SOP Instance UID missing or empty.
``invalid_uid``
    One of those UIDs is longer than 64 characters or holds characters other than digits,
    dots, ASCII letters, ``-`` and ``_`` (UIDs end up in object names and document ids).
``corrupt``
    Any parse error: a value or sequence longer than the file, an undefined length without
    its delimiter, sequences nested deeper than :data:`MAX_SEQUENCE_DEPTH` (or deep enough
    to exhaust the interpreter stack), pixel data encoded against its transfer syntax,
    header fields too long to store.
``truncated_pixel_data``
    The pixel data holds fewer bytes than its header declares (value length beyond the end
    of the file, native pixel data shorter than Rows x Columns x Samples x Bits x Frames,
    encapsulated pixel data without its sequence delimiter).
``too_large``
    The header (everything before the pixel data) is longer than ``max_header_bytes``, or
    holds more than ``max_elements`` data elements.
``deflate_bomb``
    A Deflated Explicit VR Little Endian dataset inflates to more than
    ``inflate_max_bytes``.

Side effects: pydicom emits warnings that quote element values; they are silenced while a
file is read (``warnings.catch_warnings`` is process-wide, so this module assumes one
request per thread at a time, which is how the functions run).
"""

from __future__ import annotations

import io
import logging
import json
import math
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import (
    _read_file_meta_info,
    data_element_offset_to_value,
    dcmread,
    read_dataset,
    read_sequence,
)
from pydicom.hooks import hooks
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, PersonName

from pacs.errors import RejectedInput

DEFLATED = "1.2.840.10008.1.2.1.99"
#: Transfer syntaxes whose pixel data is native (not encapsulated).
NATIVE_TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired)
    DEFLATED,
})
#: (7FE0,0010) Pixel Data, (7FE0,0008) Float Pixel Data, (7FE0,0009) Double Float Pixel Data.
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
ITEM_TAG = 0xFFFEE000
SEQUENCE_DELIMITER_TAG = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF

#: Deepest sequence nesting accepted (real objects stay far below; SR trees reach ~10).
MAX_SEQUENCE_DEPTH = 64
#: Data elements (at all nesting levels) accepted in one header. pydicom holds roughly
#: 300 bytes per element; the reader also stops after 2 x this many element/item headers,
#: so a flood of empty elements peaks near 200 MiB RSS and 2-3 s (measured) instead of
#: gigabytes for a 64 MiB header. Enhanced multi-frame headers need ~35 per frame.
DEFAULT_MAX_ELEMENTS = 300_000
#: Most fragments walked in encapsulated pixel data (one 8-byte read each).
MAX_FRAGMENTS = 1_000_000
#: Serialized size cap for the extracted fields (they go into one Firestore document).
MAX_FIELDS_JSON_BYTES = 32 * 1024
MAX_UID_CHARS = 64
#: Characters accepted in the three identifying UIDs: DICOM allows digits and dots; letters,
#: ``-`` and ``_`` are tolerated (hashed or hex UIDs exist in the wild, see pydicom's
#: ``bad_sequence.dcm``). Anything else (``/``, spaces, control characters) is refused.
_UID_CHARS = frozenset("0123456789.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_")

_INFLATE_IN_CHUNK = 256 * 1024
_INFLATE_OUT_CHUNK = 1024 * 1024

#: The keys of :attr:`InstanceHeader.fields`, in order.
FIELD_NAMES = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
    "StudyDescription", "ReferringPhysicianName", "ModalitiesInStudy",
    "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "BodyPartExamined",
    "SOPInstanceUID", "SOPClassUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames",
    "TransferSyntaxUID", "ImagePositionPatient", "ImageOrientationPatient", "SliceLocation",
    "has_pixel_data", "is_image",
)
_TEXT_FIELDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
    "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription",
    "ReferringPhysicianName", "SeriesInstanceUID", "Modality", "SeriesDescription",
    "BodyPartExamined", "SOPInstanceUID", "SOPClassUID",
)
_INT_FIELDS = ("SeriesNumber", "InstanceNumber")
_UID_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

_MESSAGES = {
    "not_dicom": "The file is not a DICOM file (no DICOM preamble and file meta information).",
    "missing_uid": "The DICOM file lacks a study, series or instance identifier (UID).",
    "invalid_uid": "A study, series or instance identifier (UID) in the file is not valid.",
    "corrupt": "The DICOM file is damaged and cannot be read.",
    "truncated_pixel_data": "The image data in the DICOM file is incomplete (truncated file).",
    "too_large": "The DICOM header is too large to process.",
    "deflate_bomb": "The compressed DICOM data expands to more than the allowed size.",
}

# Everything a parser may raise on hostile bytes (deliberately not ``Exception``).
_PARSE_ERRORS = (
    InvalidDicomError, BytesLengthException, ValueError, TypeError, KeyError, IndexError, AttributeError,
    LookupError, ArithmeticError, struct.error, zlib.error, OSError, EOFError,
    NotImplementedError, RuntimeError, AssertionError, UnicodeError,
)


# pydicom's warnings quote element values (names, ids): keep its logger from ever reaching
# a handler, whatever the root logger is configured to do.
logging.getLogger("pydicom").addHandler(logging.NullHandler())
logging.getLogger("pydicom").propagate = False

class HeaderRejected(RejectedInput):
    """The upload is not an acceptable DICOM instance; ``code`` says why (see module doc)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or _MESSAGES.get(code, _MESSAGES["corrupt"]), code=code)


@dataclass(frozen=True)
class InstanceHeader:
    """What ingest needs from one instance: its identity and a few searchable fields.

    ``fields`` holds exactly :data:`FIELD_NAMES` as JSON-serializable plain values
    (``None`` when absent or empty). ``pixel_data_offset``/``pixel_data_length`` locate the
    pixel data value (offsets in the inflated stream for deflated files).
    """

    transfer_syntax_uid: str
    sop_class_uid: str | None
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    fields: dict[str, Any] = field(hash=False)
    has_pixel_data: bool
    is_image: bool
    pixel_data_offset: int | None = None
    pixel_data_length: int | None = None


def zero_preamble(first_bytes: bytes) -> bytes:
    """Return ``first_bytes`` with the 128-byte preamble zeroed when ``DICM`` is at 128.

    A Part 10 preamble is free-form and can hold an executable header (CVE-2019-11687,
    "PE/DICOM polyglots"); stored copies get a zero preamble. Anything else is returned
    unchanged.
    """
    if len(first_bytes) >= 132 and first_bytes[128:132] == b"DICM":
        return bytes(128) + bytes(first_bytes[128:])
    return bytes(first_bytes)


# --------------------------------------------------------------------------- bounded input


class _Budget:
    """Counts 8-byte reads (one per element or item header) across every parse of a file."""

    def __init__(self, max_elements: int) -> None:
        # Legitimate elements cost one 8-byte tag read, plus one when the value is 8 bytes.
        self.left = 2 * max_elements
        self.exceeded = False

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            self.exceeded = True
            raise _BudgetExceeded


class _BudgetExceeded(Exception):
    """Internal signal (never escapes :func:`read_header`)."""


class _BoundedReader:
    """Seekable, read-only view of the first ``limit`` bytes of a file object.

    Reads never ask the underlying object for more than what is left below ``limit``
    (a declared length of 0xFFFFFFF0 costs nothing), and ``hit_limit`` records that the
    limit, not the end of the data, cut a read short.
    """

    def __init__(self, raw: BinaryIO, *, limit: int, size: int, budget: _Budget) -> None:
        self._raw = raw
        self._limit = max(0, min(limit, size))
        self._size = size
        self._pos = 0
        self._budget = budget
        self.hit_limit = False
        self.partial_header = False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            pos = offset
        elif whence == 1:
            pos = self._pos + offset
        else:
            pos = self._limit + offset
        if pos < 0:
            raise OSError("negative seek position")
        self._pos = pos
        return pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = max(0, self._limit - self._pos)
        if n == 8:
            self._budget.spend()
        available = max(0, self._limit - self._pos)
        wanted = n
        if n > available:
            if self._limit < self._size:
                self.hit_limit = True
            n = available
        data = b""
        if n > 0:
            self._raw.seek(self._pos)
            data = self._raw.read(n)
            self._pos += len(data)
        if wanted == 8 and 0 < len(data) < 8:
            # pydicom silently drops a final element header cut short by the end of file.
            self.partial_header = True
        return data


# --------------------------------------------------------------------------- public entry


def read_header(
    fileobj: BinaryIO | bytes,
    size: int,
    *,
    max_header_bytes: int,
    inflate_max_bytes: int,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> InstanceHeader:
    """Parse and check the header of one uploaded DICOM file.

    ``fileobj`` is a seekable binary file object (or bytes) holding ``size`` bytes. Only
    the header (everything before the pixel data) is read into memory, at most
    ``max_header_bytes`` of it; the pixel data is checked for truncation by its declared
    length (and, when encapsulated, by walking the 8-byte fragment headers).

    Raises :class:`HeaderRejected` (never anything else for bad input).
    """
    if isinstance(fileobj, bytes | bytearray | memoryview):
        fileobj = io.BytesIO(bytes(fileobj))
    budget = _Budget(max_elements)
    readers: list[_BoundedReader] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _read_header(fileobj, size, max_header_bytes, inflate_max_bytes,
                                max_elements, budget, readers)
        except HeaderRejected:
            raise
        except _BudgetExceeded:
            raise HeaderRejected("too_large") from None
        except MemoryError:
            raise HeaderRejected("too_large") from None
        except RecursionError:
            raise HeaderRejected("corrupt") from None
        except _PARSE_ERRORS:
            if budget.exceeded:  # pydicom re-raises some read errors as OSError
                raise HeaderRejected("too_large") from None
            if any(r.hit_limit for r in readers):
                raise HeaderRejected("too_large") from None
            raise HeaderRejected("corrupt") from None


def _read_header(
    fileobj: BinaryIO,
    size: int,
    max_header_bytes: int,
    inflate_max_bytes: int,
    max_elements: int,
    budget: _Budget,
    readers: list[_BoundedReader],
) -> InstanceHeader:
    if size < 132:
        raise HeaderRejected("not_dicom")
    reader = _BoundedReader(fileobj, limit=max_header_bytes, size=size, budget=budget)
    readers.append(reader)
    head = reader.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise HeaderRejected("not_dicom")

    file_meta = _read_file_meta_info(reader)
    _check_raw_lengths(file_meta)
    transfer_syntax = _uid_text(file_meta.get("TransferSyntaxUID"))
    if not transfer_syntax:
        raise HeaderRejected("not_dicom")
    if budget.exceeded:
        raise HeaderRejected("too_large")

    if transfer_syntax == DEFLATED:
        # Two passes: count first (a bomb costs no memory), then keep the header part.
        start = reader.tell()
        total = _inflate(fileobj, start, size, cap=inflate_max_bytes)
        kept = io.BytesIO()
        _inflate(fileobj, start, size, cap=inflate_max_bytes, sink=kept,
                 keep=min(total, max_header_bytes))
        data = _BoundedReader(kept, limit=kept.tell(), size=total, budget=budget)
        readers.append(data)
        ds = read_dataset(data, False, True, stop_when=_at_pixels)
        ds.file_meta = file_meta
        data_size, raw_source = total, None
    else:
        reader.seek(0)
        ds = dcmread(reader, stop_before_pixels=True)
        data, data_size, raw_source = reader, size, fileobj
    if budget.exceeded:
        raise HeaderRejected("too_large")

    is_implicit, is_little = ds.original_encoding
    pixel = _pixel_element_at(data, bool(is_implicit), bool(is_little))
    if data.partial_header and not data.hit_limit:
        raise HeaderRejected("corrupt")  # the file ends inside an element header
    if pixel is None and data.tell() < data_size:
        # pydicom stopped early without an exception (e.g. it swallowed an EOFError for a
        # value without its delimiter and rewound), or the header limit cut it short.
        raise HeaderRejected("too_large" if data.hit_limit else "corrupt")

    _validate_structure(ds, budget, max_elements)

    uids = {name: _uid_text(ds.get(name)) for name in _UID_FIELDS}
    if not all(uids.values()):
        raise HeaderRejected("missing_uid")
    for uid in uids.values():
        if len(uid) > MAX_UID_CHARS or not set(uid) <= _UID_CHARS:
            raise HeaderRejected("invalid_uid")

    fields = field_values_from_pydicom(ds, has_pixel_data=pixel is not None)
    if pixel is not None:
        _check_pixel_data(ds, fields, transfer_syntax, pixel, data_size, raw_source, is_little)
    try:
        encoded = json.dumps(fields, allow_nan=False)
    except (TypeError, ValueError):
        raise HeaderRejected("corrupt") from None
    if len(encoded.encode()) > MAX_FIELDS_JSON_BYTES:
        raise HeaderRejected("corrupt", "The DICOM header fields are too long to store.")

    return InstanceHeader(
        transfer_syntax_uid=transfer_syntax,
        sop_class_uid=fields["SOPClassUID"] or _uid_text(file_meta.get(
            "MediaStorageSOPClassUID")),
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        fields=fields,
        has_pixel_data=fields["has_pixel_data"],
        is_image=fields["is_image"],
        pixel_data_offset=pixel[1] if pixel else None,
        pixel_data_length=pixel[2] if pixel else None,
    )


def _at_pixels(tag: int, vr: str | None, length: int) -> bool:
    return tag in PIXEL_TAGS


# --------------------------------------------------------------------------- deflate


def _inflate(
    fileobj: BinaryIO, start: int, end: int, *, cap: int,
    sink: io.BytesIO | None = None, keep: int = 0,
) -> int:
    """Inflate the raw deflate stream in ``fileobj[start:end]``; return the inflated size.

    Without a ``sink`` the output is discarded, so a bomb costs no memory. With one, the
    first ``keep`` inflated bytes are written to it and inflation stops there (the return
    value is then only a lower bound). More than ``cap`` inflated bytes raise
    ``deflate_bomb``; a stream without its final block is corrupt.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    pos = start
    exhausted = False
    while not inflater.eof:
        chunk = b""
        if pos < end:
            fileobj.seek(pos)
            chunk = fileobj.read(min(_INFLATE_IN_CHUNK, end - pos))
            pos += len(chunk)
        if not chunk:
            if exhausted:
                break
            exhausted = True  # one more round with no input drains buffered output
        pending = chunk
        while not inflater.eof:
            out = inflater.decompress(pending, _INFLATE_OUT_CHUNK)
            pending = inflater.unconsumed_tail
            total += len(out)
            if total > cap:
                raise HeaderRejected("deflate_bomb")
            if sink is not None:
                sink.write(out[: max(0, keep - sink.tell())])
                if sink.tell() >= keep:
                    return total
            if not pending and len(out) < _INFLATE_OUT_CHUNK:
                break  # input used up and output not capped: nothing buffered
    if not inflater.eof:
        raise HeaderRejected("corrupt")
    return total


def inflated_file(fileobj: BinaryIO | bytes, size: int, *, inflate_max_bytes: int) -> io.BytesIO:
    """Return an in-memory copy of a Deflated Explicit VR Little Endian file, inflated.

    The preamble and file meta are kept byte for byte (the Transfer Syntax UID still says
    deflated), followed by the inflated dataset: decode it as Explicit VR Little Endian.
    For decoders that cannot inflate in bounded memory themselves (pydicom inflates with
    one unbounded ``zlib.decompress``). Raises :class:`HeaderRejected`.
    """
    if isinstance(fileobj, bytes | bytearray | memoryview):
        fileobj = io.BytesIO(bytes(fileobj))
    budget = _Budget(DEFAULT_MAX_ELEMENTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = _BoundedReader(fileobj, limit=size, size=size, budget=budget)
            head = reader.read(132)
            if len(head) < 132 or head[128:132] != b"DICM":
                raise HeaderRejected("not_dicom")
            meta = _read_file_meta_info(reader)
            if _uid_text(meta.get("TransferSyntaxUID")) != DEFLATED:
                raise HeaderRejected("not_dicom")
            start = reader.tell()
            total = _inflate(fileobj, start, size, cap=inflate_max_bytes)
            out = io.BytesIO()
            fileobj.seek(0)
            out.write(fileobj.read(start))
            _inflate(fileobj, start, size, cap=inflate_max_bytes, sink=out,
                     keep=start + total)
        except HeaderRejected:
            raise
        except (*_PARSE_ERRORS, _BudgetExceeded, MemoryError):
            raise HeaderRejected("corrupt") from None
    out.seek(0)
    return out


# --------------------------------------------------------------------------- structure


def _check_raw_lengths(ds: Dataset) -> None:
    """Reject raw elements whose value is shorter than their declared length."""
    for elem in ds.elements():
        if (
            isinstance(elem, RawDataElement)
            and elem.length != UNDEFINED_LENGTH
            and isinstance(elem.value, bytes)
            and len(elem.value) != elem.length
        ):
            raise HeaderRejected("corrupt")


def _validate_structure(ds: Dataset, budget: _Budget, max_elements: int) -> None:
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
        _check_raw_lengths(current)
        for elem in current.elements():
            count += 1
            if count > max_elements:
                raise HeaderRejected("too_large")
            items: Sequence | list[Dataset]
            if isinstance(elem, RawDataElement):
                if not elem.value or _raw_vr(elem, current) != "SQ":
                    continue
                value = bytes(elem.value)
                items = read_sequence(
                    _BoundedReader(io.BytesIO(value), limit=len(value), size=len(value),
                                   budget=budget),
                    elem.is_implicit_VR, elem.is_little_endian, len(value),
                    current.original_character_set, elem.value_tell,
                )
            elif elem.VR == "SQ" and isinstance(elem.value, Sequence | list):
                items = elem.value
            else:
                continue
            stack.extend((item, depth + 1) for item in items)


def _raw_vr(elem: RawDataElement, ds: Dataset) -> str | None:
    data: dict[str, Any] = {}
    hooks.raw_element_vr(elem, data, encoding=ds.original_character_set, ds=ds)
    return data.get("VR")


# --------------------------------------------------------------------------- pixel data


def _pixel_element_at(
    data: _BoundedReader, is_implicit: bool, is_little: bool
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


def _check_pixel_data(
    ds: Dataset,
    fields: dict[str, Any],
    transfer_syntax: str,
    pixel: tuple[int, int, int],
    data_size: int,
    raw_source: BinaryIO | None,
    is_little: bool,
) -> None:
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
    bits = _as_int(_get(ds, "BitsAllocated"))
    samples = _as_int(_get(ds, "SamplesPerPixel"))
    if samples is None:
        samples = 1
    if bits is None or bits <= 0 or samples <= 0:
        return None
    frames = fields["NumberOfFrames"] or 1
    rows, columns = fields["Rows"], fields["Columns"]
    photometric = _as_text(_get(ds, "PhotometricInterpretation"))
    per_pixel = 2 if photometric == "YBR_FULL_422" and samples == 3 else samples
    return (rows * columns * frames * per_pixel * bits + 7) // 8


# --------------------------------------------------------------------------- field values


def field_values_from_pydicom(ds: Dataset, *, has_pixel_data: bool | None = None) -> dict:
    """Extract :data:`FIELD_NAMES` from a pydicom dataset as plain JSON-ready values.

    Used by :func:`read_header` and, as the reference, by the tests on a dataset read
    independently with ``pydicom.dcmread``. ``has_pixel_data`` defaults to whether a
    pixel data element is in ``ds`` (pass it when ``ds`` was read ``stop_before_pixels``).
    Text is decoded with the Specific Character Set (person names in their ``^``/``=``
    form); empty values are ``None``; numbers that do not parse are ``None``.
    """
    if has_pixel_data is None:
        has_pixel_data = any(tag in ds for tag in PIXEL_TAGS)
    out: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        out[name] = _as_text(_get(ds, name))
    for name in _INT_FIELDS:
        out[name] = _as_int(_get(ds, name))
    out["ModalitiesInStudy"] = _as_text_list(_get(ds, "ModalitiesInStudy"))
    rows = _as_int(_get(ds, "Rows"), strings=False)
    columns = _as_int(_get(ds, "Columns"), strings=False)
    out["Rows"], out["Columns"] = rows, columns
    is_image = bool(has_pixel_data and rows and columns and rows > 0 and columns > 0)
    frames_value = _get(ds, "NumberOfFrames")
    frames = _as_int(frames_value)
    if frames is not None and frames <= 0:
        frames = None
    if frames_value in (None, "") and is_image:
        frames = 1
    out["NumberOfFrames"] = frames
    meta = getattr(ds, "file_meta", None)
    out["TransferSyntaxUID"] = _uid_text(meta.get("TransferSyntaxUID")) if meta else None
    out["ImagePositionPatient"] = _as_floats(_get(ds, "ImagePositionPatient"), 3)
    out["ImageOrientationPatient"] = _as_floats(_get(ds, "ImageOrientationPatient"), 6)
    out["SliceLocation"] = _as_float(_get(ds, "SliceLocation"))
    out["has_pixel_data"] = bool(has_pixel_data)
    out["is_image"] = is_image
    return {name: out[name] for name in FIELD_NAMES}


_VALUE_ERRORS = (
    BytesLengthException, ValueError, TypeError, KeyError, IndexError, LookupError, ArithmeticError,
    NotImplementedError, UnicodeError, struct.error, AttributeError, OSError,
)


def _get(ds: Dataset, keyword: str) -> Any:
    """The converted value of a top-level element, or None (absent or unconvertible)."""
    try:
        elem = ds.data_element(keyword)
    except _VALUE_ERRORS:
        return None
    if elem is None:
        return None
    try:
        return elem.value
    except _VALUE_ERRORS:
        return None


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, bytes | bytearray | Sequence | Dataset):
        return None
    if isinstance(value, MultiValue | list | tuple):
        parts = [_as_text(v) or "" for v in value]
        text = "\\".join(parts)
    elif isinstance(value, PersonName):
        text = str(value)
    else:
        text = str(value)
    return text or None


def _uid_text(value: Any) -> str | None:
    if value is None or isinstance(value, bytes | bytearray | MultiValue | list | Sequence):
        return None
    text = str(value).strip().rstrip("\0").strip()
    return text or None


def _as_text_list(value: Any) -> list[str] | None:
    if value is None or isinstance(value, bytes | bytearray | Sequence):
        return None
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    texts = [str(v) for v in values if v is not None and str(v) != ""]
    return texts or None


def _as_int(value: Any, *, strings: bool = True) -> int | None:
    if value is None or isinstance(value, bool | bytes | bytearray | MultiValue | list):
        return None
    if isinstance(value, str) and not strings:
        return None
    try:
        number = float(value)
    except _VALUE_ERRORS:
        return None
    if not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool | bytes | bytearray | MultiValue | list):
        return None
    try:
        number = float(value)
    except _VALUE_ERRORS:
        return None
    return number if math.isfinite(number) else None


def _as_floats(value: Any, count: int) -> list[float] | None:
    if not isinstance(value, MultiValue | list | tuple) or len(value) != count:
        return None
    numbers = [_as_float(v) for v in value]
    if any(n is None for n in numbers):
        return None
    return [float(n) for n in numbers if n is not None]
