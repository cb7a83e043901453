"""Inspect and stream uploaded ZIP archives without trusting them.

An uploaded archive is hostile until proven otherwise, and its contents are PHI. The archive
modules read the ZIP structures themselves instead of handing the file to :mod:`zipfile`, so
that every limit is checked *before* the expensive or dangerous step it guards:

1. The End Of Central Directory record (and its ZIP64 form) gives the entry count, which is
   capped before a single central directory entry is parsed.
2. The central directory is parsed as a stream, one entry at a time, keeping only sizes,
   flags and a sanitised display name (never the raw name; names are never used as paths).
3. Declared sizes, compression ratios and entry spans are checked; overlapping spans (the
   "quoted overlap" zip bomb, which CPython 3.11's ``zipfile`` accepts) reject the archive.
4. Members are then streamed through a bounded inflater that refuses to emit more bytes than
   declared (a lying header) and verifies the CRC at the end.

This module is the entry point (:class:`SafeArchive`, :func:`inspect_archive`,
:func:`sniff`); steps 1 to 3 are :mod:`pacs.zip.directory`, member names and kinds
:mod:`pacs.zip.members`, step 4 :mod:`pacs.zip.stream`, the rejections :mod:`pacs.zip.errors`.
Nothing here writes files or logs member names.
"""

from __future__ import annotations

import io

from pacs.zip.directory import BinarySource, Entry, ZipLimits, read_directory
from pacs.zip.errors import ArchiveRejected, MemberRejected
from pacs.zip.format import LOCAL_SIG
from pacs.zip.members import READABLE_KINDS, MemberInfo
from pacs.zip.stream import CHUNK, MemberStream

__all__ = [
    "ArchiveRejected",
    "BinarySource",
    "MemberInfo",
    "MemberRejected",
    "SafeArchive",
    "ZipLimits",
    "inspect_archive",
    "sniff",
]


def sniff(head: bytes) -> str:
    """Classify the first bytes of a file or member.

    Parameters
    ----------
    head : bytes
        At least the first 132 bytes (fewer is fine; missing magic simply does not match).

    Returns
    -------
    str
        ``dicom`` (``DICM`` at offset 128), ``zip`` (``PK\\x03\\x04`` at offset 0),
        ``polyglot`` (both; refuse it, different readers would see different content) or
        ``unknown``.
    """
    is_dicom = head[128:132] == b"DICM"
    is_zip = head[:4] == LOCAL_SIG
    if is_dicom and is_zip:
        return "polyglot"
    return "dicom" if is_dicom else "zip" if is_zip else "unknown"


def inspect_archive(fileobj: BinarySource, limits: ZipLimits) -> list[MemberInfo]:
    """Check an archive against ``limits`` and list its members, reading no member content.

    Parameters
    ----------
    fileobj : binary file-like object
        Seekable and readable (in production a ``google.cloud.storage`` ``BlobReader``; only
        the tail, the central directory and the local headers are read).
    limits : ZipLimits
        The caps to enforce.

    Returns
    -------
    list of MemberInfo
        In central directory order.

    Raises
    ------
    ArchiveRejected
        When any archive-level check fails (see its codes).
    """
    return SafeArchive(fileobj, limits).members()


class SafeArchive:
    """An inspected archive whose members can be streamed with enforced bounds.

    Construction runs every archive-level check (see :func:`inspect_archive`) and raises
    :class:`ArchiveRejected` on failure. Streams returned by :meth:`open` share ``fileobj``
    but keep their own position, so they may be interleaved (not used from several threads).
    """

    def __init__(self, fileobj: BinarySource, limits: ZipLimits) -> None:
        self._fp = fileobj
        self._limits = limits
        self._entries = read_directory(fileobj, limits)

    def members(self) -> list[MemberInfo]:
        """Return the members, in central directory order."""
        return [entry.info for entry in self._entries]

    def open(self, member: MemberInfo) -> io.BufferedReader:
        """Stream a member's decompressed bytes.

        The stream raises :class:`MemberRejected` (``member_too_large``) as soon as more bytes
        would come out than declared, and ``corrupt_member`` on a short stream, trailing data
        or CRC mismatch (checked before the final chunk is returned). Bytes already read are
        only trustworthy once the stream reached EOF without error.

        Raises
        ------
        MemberRejected
            ``unreadable_member`` when ``member.kind`` is not ``file`` or ``dicomdir``.
        ValueError
            When ``member`` does not come from this archive.
        """
        entry = self._entry(member)
        if member.kind not in READABLE_KINDS:
            raise MemberRejected("unreadable_member")
        return io.BufferedReader(MemberStream(self._fp, entry), buffer_size=CHUNK)

    def read_member(self, member: MemberInfo, max_bytes: int) -> bytes:
        """Read a whole member into memory, refusing anything over ``max_bytes``.

        Raises
        ------
        MemberRejected
            ``member_too_large`` when the declared size exceeds ``max_bytes`` (checked before
            reading), plus everything :meth:`open` raises.
        """
        if member.size > max_bytes:
            raise MemberRejected("member_too_large")
        with self.open(member) as stream:
            return stream.read()

    def _entry(self, member: MemberInfo) -> Entry:
        index = member.index
        if not (0 <= index < len(self._entries)) or self._entries[index].info != member:
            raise ValueError("member does not belong to this archive")
        return self._entries[index]
