"""How an uploaded ZIP archive is refused: :class:`ArchiveRejected` for the whole archive,
:class:`MemberRejected` for one member while it streams.
"""

from __future__ import annotations

from pacs.errors import RejectedInput


class ArchiveRejected(RejectedInput):
    """The whole archive is refused; ``code`` says why.

    Codes: ``too_many_members``, ``archive_too_large`` (declared total, or a central directory
    too large for its entry count), ``member_too_large``, ``compression_ratio``,
    ``overlapping_entries``, ``not_a_zip`` (no end-of-central-directory record),
    ``corrupt_archive`` (structures inconsistent or truncated).
    """

    codes = frozenset({
        "too_many_members", "archive_too_large", "member_too_large", "compression_ratio",
        "overlapping_entries", "not_a_zip", "corrupt_archive",
    })
    _messages = {
        "too_many_members": "the archive holds more files than allowed",
        "archive_too_large": "the archive would unpack to more data than allowed",
        "member_too_large": "a file in the archive is larger than allowed",
        "compression_ratio": "a file in the archive is compressed suspiciously well",
        "overlapping_entries": "files in the archive overlap each other (a zip bomb)",
        "not_a_zip": "the file is not a ZIP archive",
        "corrupt_archive": "the archive is damaged or malformed",
        "corrupt_member": "a file in the archive is damaged",
        "unreadable_member": "this archive entry cannot be read as a file",
    }

    def __init__(self, code: str, message: str | None = None) -> None:
        if code not in self.codes:
            raise ValueError(f"unknown {type(self).__name__} code {code!r}")
        super().__init__(message or self._messages[code], code=code)


class MemberRejected(ArchiveRejected):
    """One member is refused while streaming; the caller decides what that means for the rest.

    Codes: ``member_too_large`` (more bytes came out than declared, or over a read bound),
    ``corrupt_member`` (truncated stream, trailing data or CRC mismatch) and
    ``unreadable_member`` (its kind is not a readable file).
    """

    codes = frozenset({"member_too_large", "corrupt_member", "unreadable_member"})
