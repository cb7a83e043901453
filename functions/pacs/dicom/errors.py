"""How reading an untrusted DICOM file fails: :class:`HeaderRejected`, its codes, and the
parser exceptions that turn into it.

Exception text from a parser can quote the file, i.e. patient data, so it is never shown:
every failure becomes a :class:`HeaderRejected` with a stable ``code`` and a plain-language
message of its own. For the same reason pydicom's logger (its warnings quote element
values) is cut off from every handler as soon as this module is imported, which every
module that reads DICOM here does.
"""

from __future__ import annotations

import logging
import struct
import zlib

from pydicom.errors import BytesLengthException, InvalidDicomError

from pacs.errors import RejectedInput

_MESSAGES = {
    "not_dicom": "The file is not a DICOM file (no DICOM preamble and file meta information).",
    "missing_uid": "The DICOM file lacks a study, series or instance identifier (UID).",
    "invalid_uid": "A study, series or instance identifier (UID) in the file is not valid.",
    "corrupt": "The DICOM file is damaged and cannot be read.",
    "truncated_pixel_data": "The image data in the DICOM file is incomplete (truncated file).",
    "too_large": "The DICOM header is too large to process.",
    "deflate_bomb": "The compressed DICOM data expands to more than the allowed size.",
}

#: Everything a parser may raise on hostile bytes (deliberately not ``Exception``).
PARSE_ERRORS = (
    InvalidDicomError, BytesLengthException, ValueError, TypeError, KeyError, IndexError, AttributeError,
    LookupError, ArithmeticError, struct.error, zlib.error, OSError, EOFError,
    NotImplementedError, RuntimeError, AssertionError, UnicodeError,
)


# pydicom's warnings quote element values (names, ids): keep its logger from ever reaching
# a handler, whatever the root logger is configured to do.
logging.getLogger("pydicom").addHandler(logging.NullHandler())
logging.getLogger("pydicom").propagate = False


class HeaderRejected(RejectedInput):
    """The upload is not an acceptable DICOM instance; ``code`` says why.

    Codes:

    ``not_dicom``
        No 128-byte preamble + ``DICM`` prefix, no File Meta Information group, or no
        (0002,0010) Transfer Syntax UID in it.
    ``missing_uid``
        Study, Series or SOP Instance UID missing or empty.
    ``invalid_uid``
        One of those UIDs is longer than 64 characters or holds characters other than
        digits, dots, ASCII letters, ``-`` and ``_`` (UIDs end up in object names and
        document ids).
    ``corrupt``
        Any parse error: a value or sequence longer than the file, an undefined length
        without its delimiter, sequences nested deeper than
        :data:`pacs.dicom.structure.MAX_SEQUENCE_DEPTH` (or deep enough to exhaust the
        interpreter stack), pixel data encoded against its transfer syntax, header fields
        too long to store.
    ``truncated_pixel_data``
        The pixel data holds fewer bytes than its header declares (value length beyond the
        end of the file, native pixel data shorter than Rows x Columns x Samples x Bits x
        Frames, encapsulated pixel data without its sequence delimiter).
    ``too_large``
        The header (everything before the pixel data) is longer than ``max_header_bytes``,
        or holds more than ``max_elements`` data elements.
    ``deflate_bomb``
        A Deflated Explicit VR Little Endian dataset inflates to more than
        ``inflate_max_bytes``.
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or _MESSAGES.get(code, _MESSAGES["corrupt"]), code=code)
