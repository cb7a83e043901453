"""Read the header of an uploaded (untrusted) DICOM Part 10 file, in bounded memory and time.

Uploads are hostile. :func:`read_header` never uses ``force=True``, never lets pydicom read
more than ``max_header_bytes`` of the file (:mod:`pacs.dicom.bounded`), inflates deflated
datasets itself with a hard cap (:mod:`pacs.dicom.deflate`), counts the data elements it
lets pydicom create, checks the structure and the pixel data (:mod:`pacs.dicom.structure`)
and turns every parse failure into a :class:`~pacs.dicom.errors.HeaderRejected` with a
stable ``code`` (listed there) and a plain-language message of its own. The fields it
returns are those of :mod:`pacs.dicom.fields`.

Side effects: pydicom emits warnings that quote element values; they are silenced while a
file is read. ``warnings.catch_warnings`` is process-wide and not thread-safe (one thread's
exit can re-enable warnings while another still parses), so every entry point also routes
warnings to a JSON line without their text (:func:`pacs.log_events.route_warnings`).
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydicom.filereader import _read_file_meta_info, dcmread, read_dataset

from pacs.dicom.bounded import DEFAULT_MAX_ELEMENTS, BoundedReader, Budget, BudgetExceeded
from pacs.dicom.deflate import DEFLATED, inflate
from pacs.dicom.errors import PARSE_ERRORS, HeaderRejected
from pacs.dicom.fields import PIXEL_TAGS, field_values_from_pydicom, uid_text
from pacs.dicom.structure import (
    check_pixel_data,
    check_raw_lengths,
    pixel_element_at,
    validate_structure,
)

__all__ = ["HeaderRejected", "InstanceHeader", "read_header", "read_header_dataset",
           "zero_preamble"]

#: Serialized size cap for the extracted fields (they go into one Firestore document).
MAX_FIELDS_JSON_BYTES = 32 * 1024
MAX_UID_CHARS = 64
#: Characters accepted in the three identifying UIDs: DICOM allows digits and dots; letters,
#: ``-`` and ``_`` are tolerated (hashed or hex UIDs exist in the wild, see pydicom's
#: ``bad_sequence.dcm``). Anything else (``/``, spaces, control characters) is refused.
_UID_CHARS = frozenset("0123456789.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_")
_PIXEL_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_UID_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class InstanceHeader:
    """What ingest needs from one instance: its identity and a few searchable fields.

    ``fields`` holds exactly :data:`~pacs.dicom.fields.FIELD_NAMES` as JSON-serializable
    plain values (``None`` when absent or empty). ``pixel_data_offset``/``pixel_data_length``
    locate the pixel data value (offsets in the inflated stream for deflated files).
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
    #: Where the data set begins in the file: ``pixel_data_offset`` is counted from here for
    #: deflated files (in the inflated stream), from 0 otherwise.
    dataset_offset: int = 0
    #: The pixel data element's tag (Pixel Data, Float or Double Float Pixel Data).
    pixel_data_tag: int | None = None
    #: Its VR as written (explicit VR files), else None.
    pixel_data_vr: str | None = None


def zero_preamble(first_bytes: bytes) -> bytes:
    """Return ``first_bytes`` with the 128-byte preamble zeroed when ``DICM`` is at 128.

    A Part 10 preamble is free-form and can hold an executable header (CVE-2019-11687,
    "PE/DICOM polyglots"); stored copies get a zero preamble. Anything else is returned
    unchanged.
    """
    if len(first_bytes) >= 132 and first_bytes[128:132] == b"DICM":
        return bytes(128) + bytes(first_bytes[128:])
    return bytes(first_bytes)


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
    return read_header_dataset(fileobj, size, max_header_bytes=max_header_bytes,
                               inflate_max_bytes=inflate_max_bytes,
                               max_elements=max_elements)[0]


def read_header_dataset(
    fileobj: BinaryIO | bytes,
    size: int,
    *,
    max_header_bytes: int,
    inflate_max_bytes: int,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> tuple[InstanceHeader, Any]:
    """:func:`read_header`, also returning the pydicom dataset it read (everything before
    the pixel data, file meta in ``file_meta``), for DICOM JSON (:mod:`pacs.dicom.json_header`).

    Raises :class:`HeaderRejected` (never anything else for bad input).
    """
    if isinstance(fileobj, bytes | bytearray | memoryview):
        fileobj = io.BytesIO(bytes(fileobj))
    budget = Budget(max_elements)
    readers: list[BoundedReader] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _read_header(fileobj, size, max_header_bytes, inflate_max_bytes,
                                max_elements, budget, readers)
        except HeaderRejected:
            raise
        except BudgetExceeded:
            raise HeaderRejected("too_large") from None
        except MemoryError:
            raise HeaderRejected("too_large") from None
        except RecursionError:
            raise HeaderRejected("corrupt") from None
        except PARSE_ERRORS:
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
    budget: Budget,
    readers: list[BoundedReader],
) -> tuple[InstanceHeader, Any]:
    if size < 132:
        raise HeaderRejected("not_dicom")
    reader = BoundedReader(fileobj, limit=max_header_bytes, size=size, budget=budget)
    readers.append(reader)
    head = reader.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise HeaderRejected("not_dicom")

    file_meta = _read_file_meta_info(reader)
    check_raw_lengths(file_meta)
    transfer_syntax = uid_text(file_meta.get("TransferSyntaxUID"))
    if not transfer_syntax:
        raise HeaderRejected("not_dicom")
    if budget.exceeded:
        raise HeaderRejected("too_large")

    dataset_offset = 0
    if transfer_syntax == DEFLATED:
        # Two passes: count first (a bomb costs no memory), then keep the header part.
        start = dataset_offset = reader.tell()
        total = inflate(fileobj, start, size, cap=inflate_max_bytes)
        kept = io.BytesIO()
        inflate(fileobj, start, size, cap=inflate_max_bytes, sink=kept,
                keep=min(total, max_header_bytes))
        data = BoundedReader(kept, limit=kept.tell(), size=total, budget=budget)
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
    pixel_vr = None
    if not is_implicit:  # the VR as written, for DICOM JSON (a 32-bit length VR: 12 bytes)
        at = data.tell()
        pixel_vr = data.read(12)[4:6].decode("ascii", "replace")
        data.seek(at)
    pixel = pixel_element_at(data, bool(is_implicit), bool(is_little))
    if data.partial_header and not data.hit_limit:
        raise HeaderRejected("corrupt")  # the file ends inside an element header
    if pixel is None and data.tell() < data_size:
        # pydicom stopped early without an exception (e.g. it swallowed an EOFError for a
        # value without its delimiter and rewound), or the header limit cut it short.
        raise HeaderRejected("too_large" if data.hit_limit else "corrupt")

    validate_structure(ds, budget, max_elements)

    uids = {name: uid_text(ds.get(name)) for name in _UID_FIELDS}
    if not all(uids.values()):
        raise HeaderRejected("missing_uid")
    for uid in uids.values():
        if len(uid) > MAX_UID_CHARS or not set(uid) <= _UID_CHARS:
            raise HeaderRejected("invalid_uid")

    fields = field_values_from_pydicom(ds, has_pixel_data=pixel is not None)
    if pixel is not None:
        check_pixel_data(ds, fields, transfer_syntax, pixel, data_size, raw_source, is_little)
    try:
        encoded = json.dumps(fields, allow_nan=False)
    except (TypeError, ValueError):
        raise HeaderRejected("corrupt") from None
    if len(encoded.encode()) > MAX_FIELDS_JSON_BYTES:
        raise HeaderRejected("corrupt", "The DICOM header fields are too long to store.")

    return InstanceHeader(
        dataset_offset=dataset_offset,
        transfer_syntax_uid=transfer_syntax,
        sop_class_uid=fields["SOPClassUID"] or uid_text(file_meta.get(
            "MediaStorageSOPClassUID")),
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        fields=fields,
        has_pixel_data=fields["has_pixel_data"],
        is_image=fields["is_image"],
        pixel_data_offset=pixel[1] if pixel else None,
        pixel_data_length=pixel[2] if pixel else None,
        pixel_data_tag=pixel[0] if pixel else None,
        pixel_data_vr=pixel_vr if pixel and pixel_vr in _PIXEL_VRS else None,
    ), ds


def _at_pixels(tag: int, vr: str | None, length: int) -> bool:
    return tag in PIXEL_TAGS
