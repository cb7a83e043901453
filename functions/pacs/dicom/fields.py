"""The searchable fields of a DICOM header, as plain JSON-ready values.

:func:`field_values_from_pydicom` turns a pydicom dataset into :data:`FIELD_NAMES`: text
decoded with the dataset's Specific Character Set (by pydicom, on access), numbers parsed
defensively, and every value that is absent, empty or does not convert given as ``None``,
since the dataset comes from an untrusted upload. The converters are shared with the
structure checks of :mod:`pacs.dicom.structure`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

#: (7FE0,0010) Pixel Data, (7FE0,0008) Float Pixel Data, (7FE0,0009) Double Float Pixel Data.
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})

#: The keys of :attr:`pacs.dicom.header.InstanceHeader.fields`, in order.
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


def field_values_from_pydicom(ds: Dataset, *, has_pixel_data: bool | None = None) -> dict:
    """Extract :data:`FIELD_NAMES` from a pydicom dataset as plain JSON-ready values.

    Used by :func:`pacs.dicom.header.read_header` and, as the reference, by the tests on a
    dataset read independently with ``pydicom.dcmread``. ``has_pixel_data`` defaults to
    whether a pixel data element is in ``ds`` (pass it when ``ds`` was read
    ``stop_before_pixels``).
    Text is decoded with the Specific Character Set (person names in their ``^``/``=``
    form); empty values are ``None``; numbers that do not parse are ``None``.
    """
    if has_pixel_data is None:
        has_pixel_data = any(tag in ds for tag in PIXEL_TAGS)
    out: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        out[name] = as_text(element_value(ds, name))
    for name in _INT_FIELDS:
        out[name] = as_int(element_value(ds, name))
    out["ModalitiesInStudy"] = _as_text_list(element_value(ds, "ModalitiesInStudy"))
    rows = as_int(element_value(ds, "Rows"), strings=False)
    columns = as_int(element_value(ds, "Columns"), strings=False)
    out["Rows"], out["Columns"] = rows, columns
    is_image = bool(has_pixel_data and rows and columns and rows > 0 and columns > 0)
    frames_value = element_value(ds, "NumberOfFrames")
    frames = as_int(frames_value)
    if frames is not None and frames <= 0:
        frames = None
    if frames_value in (None, "") and is_image:
        frames = 1
    out["NumberOfFrames"] = frames
    meta = getattr(ds, "file_meta", None)
    out["TransferSyntaxUID"] = uid_text(meta.get("TransferSyntaxUID")) if meta else None
    out["ImagePositionPatient"] = _as_floats(element_value(ds, "ImagePositionPatient"), 3)
    out["ImageOrientationPatient"] = _as_floats(element_value(ds, "ImageOrientationPatient"), 6)
    out["SliceLocation"] = _as_float(element_value(ds, "SliceLocation"))
    out["has_pixel_data"] = bool(has_pixel_data)
    out["is_image"] = is_image
    return {name: out[name] for name in FIELD_NAMES}


_VALUE_ERRORS = (
    BytesLengthException, ValueError, TypeError, KeyError, IndexError, LookupError, ArithmeticError,
    NotImplementedError, UnicodeError, struct.error, AttributeError, OSError,
)


def element_value(ds: Dataset, keyword: str) -> Any:
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


def as_text(value: Any) -> str | None:
    """Text of a value (several joined by ``\\``); None if empty, binary or a sequence."""
    if value is None or isinstance(value, bytes | bytearray | Sequence | Dataset):
        return None
    if isinstance(value, MultiValue | list | tuple):
        parts = [as_text(v) or "" for v in value]
        text = "\\".join(parts)
    elif isinstance(value, PersonName):
        text = str(value)
    else:
        text = str(value)
    return text or None


def uid_text(value: Any) -> str | None:
    """A single UID without its padding, None for empty, several or binary values."""
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


def as_int(value: Any, *, strings: bool = True) -> int | None:
    """A whole number, None otherwise (and for any text when ``strings`` is false)."""
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
