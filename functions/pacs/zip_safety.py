"""Inspect and stream uploaded ZIP archives without trusting them.

An uploaded archive is hostile until proven otherwise, and its contents are PHI. This module
reads the ZIP structures itself instead of handing the file to :mod:`zipfile`, so that every
limit is checked *before* the expensive or dangerous step it guards:

1. The End Of Central Directory record (and its ZIP64 form) gives the entry count, which is
   capped before a single central directory entry is parsed.
2. The central directory is parsed as a stream, one entry at a time, keeping only sizes,
   flags and a sanitised display name (never the raw name; names are never used as paths).
3. Declared sizes, compression ratios and entry spans are checked; overlapping spans (the
   "quoted overlap" zip bomb, which CPython 3.11's ``zipfile`` accepts) reject the archive.
4. Members are then streamed through a bounded inflater that refuses to emit more bytes than
   declared (a lying header) and verifies the CRC at the end.

Nothing here writes files or logs member names.
"""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pacs.errors import RejectedInput

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

MIB = 1024**2

#: Members declaring fewer bytes than this are exempt from the ratio check: a small member
#: cannot amplify much whatever its ratio (a 1 MiB file of zeros legitimately deflates
#: ~1000:1), and the per-member and total caps bound it anyway.
RATIO_EXEMPT_BYTES = 1 * MIB

#: Member kinds that :meth:`SafeArchive.open` will stream.
READABLE_KINDS = frozenset({"file", "dicomdir"})

DISPLAY_NAME_MAX = 255

_STORED, _DEFLATED, _AES = 0, 8, 99
_FLAG_ENCRYPTED = 0x0001
_FLAG_DATA_DESCRIPTOR = 0x0008
_FLAG_STRONG_ENCRYPTION = 0x0040
_FLAG_UTF8 = 0x0800
_DOS_DIRECTORY = 0x10
_ZIP64_EXTRA = 0x0001
_AES_EXTRA = 0x9901
_U16_MAX, _U32_MAX = 0xFFFF, 0xFFFFFFFF

_EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes, then the archive comment
_EOCD_SIG = b"PK\x05\x06"
_EOCD_MAX_COMMENT = 0xFFFF
_ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes, just before the EOCD
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_LOCAL_SIG = b"PK\x03\x04"
_DESCRIPTOR_SIG = b"PK\x07\x08"

_CHUNK = 64 * 1024


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


@dataclass(frozen=True)
class ZipLimits:
    """Caps applied to one archive.

    Attributes
    ----------
    max_members : int
        Most central directory entries (of any kind) accepted.
    max_member_bytes : int
        Largest declared uncompressed size of one member.
    max_total_bytes : int
        Largest sum of declared uncompressed sizes.
    max_ratio : int
        Largest ``size / compressed_size`` for members of at least
        :data:`RATIO_EXEMPT_BYTES`.
    """

    max_members: int
    max_member_bytes: int
    max_total_bytes: int
    max_ratio: int

    @classmethod
    def from_settings(cls, settings: Any) -> ZipLimits:
        """Build the limits from :class:`pacs.settings.Settings` (``zip_max_*``)."""
        return cls(
            max_members=settings.zip_max_members,
            max_member_bytes=settings.zip_max_member_bytes,
            max_total_bytes=settings.zip_max_total_bytes,
            max_ratio=settings.zip_max_ratio,
        )


@dataclass(frozen=True)
class MemberInfo:
    """What the caller may know about one member.

    Attributes
    ----------
    index : int
        Position in the central directory (0-based); the member's stable identity.
    display_name : str
        The member name as untrusted text, for metadata only: decoded without errors, control
        and format characters replaced by U+FFFD, at most 255 characters. Never a path.
    size : int
        Declared uncompressed size (enforced while streaming).
    compressed_size : int
        Declared compressed size.
    kind : str
        ``file``, ``directory``, ``symlink``, ``encrypted``, ``unsupported_compression`` or
        ``dicomdir``. Only ``file`` and ``dicomdir`` can be opened.
    """

    index: int
    display_name: str
    size: int
    compressed_size: int
    kind: str


class BinarySource(Protocol):
    """What is needed of the archive file: a seekable binary reader (a local file, a
    ``BytesIO`` or a ``google.cloud.storage`` ``BlobReader``)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


@dataclass(frozen=True)
class _Entry:
    """Central directory facts kept privately; the raw name is kept only as a digest."""

    info: MemberInfo
    offset: int
    method: int
    flags: int
    crc: int
    name_len: int
    name_digest: bytes
    data_offset: int = -1  # set once the local header has been checked


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
    is_zip = head[:4] == _LOCAL_SIG
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
        self._entries = _inspect(fileobj, limits)

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
        return io.BufferedReader(_MemberStream(self._fp, entry), buffer_size=_CHUNK)

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

    def _entry(self, member: MemberInfo) -> _Entry:
        index = member.index
        if not (0 <= index < len(self._entries)) or self._entries[index].info != member:
            raise ValueError("member does not belong to this archive")
        return self._entries[index]


# --- Archive inspection -------------------------------------------------------------------


@dataclass(frozen=True)
class _Directory:
    count: int
    offset: int
    size: int


def _inspect(fp: BinarySource, limits: ZipLimits) -> list[_Entry]:
    directory = _find_directory(fp)
    if directory.count > limits.max_members:
        raise ArchiveRejected("too_many_members")
    entries = _read_central_directory(fp, directory)
    _check_spans(entries, directory.offset, _lower_bound_span)  # cheap: no extra reads
    _check_sizes(entries, limits)
    return _check_local_headers(fp, entries, directory.offset)


def _read_at(fp: BinarySource, offset: int, n: int) -> bytes:
    fp.seek(offset)
    data = fp.read(n)
    if len(data) != n:
        raise ArchiveRejected("corrupt_archive")
    return data


def _find_directory(fp: BinarySource) -> _Directory:
    """Locate the central directory from the (ZIP64) end-of-central-directory record."""
    file_size = fp.seek(0, io.SEEK_END)
    tail_len = min(file_size, _EOCD.size + _EOCD_MAX_COMMENT)
    tail = _read_at(fp, file_size - tail_len, tail_len) if tail_len else b""
    eocd_at = _find_eocd(tail)
    if eocd_at < 0:
        raise ArchiveRejected("not_a_zip")
    eocd_pos = file_size - tail_len + eocd_at
    _, disk, cd_disk, disk_count, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, eocd_at)
    if disk or cd_disk or disk_count != count:
        raise ArchiveRejected("corrupt_archive")  # multi-volume archives are not supported
    directory, cd_end = _Directory(count, cd_offset, cd_size), eocd_pos
    if eocd_pos >= _ZIP64_LOCATOR.size:
        # Take the locator from the tail when it is there: a backward seek costs a range
        # request on a BlobReader.
        locator_at = eocd_at - _ZIP64_LOCATOR.size
        locator = (tail[locator_at:eocd_at] if locator_at >= 0 else
                   _read_at(fp, eocd_pos - _ZIP64_LOCATOR.size, _ZIP64_LOCATOR.size))
        if locator[:4] == _ZIP64_LOCATOR_SIG:
            directory, cd_end = _read_zip64(fp, locator, eocd_pos - _ZIP64_LOCATOR.size)
    # Strict layout: no prepended data and nothing hidden between the directory and its end
    # record, so every reader agrees on where entries are.
    if directory.offset + directory.size != cd_end:
        raise ArchiveRejected("corrupt_archive")
    return directory


def _find_eocd(tail: bytes) -> int:
    """Index of the last EOCD signature whose comment length reaches exactly the end."""
    at = tail.rfind(_EOCD_SIG)
    while at >= 0:
        if len(tail) - at >= _EOCD.size:
            comment_len = _EOCD.unpack_from(tail, at)[-1]
            if at + _EOCD.size + comment_len == len(tail):
                return at
        at = tail.rfind(_EOCD_SIG, 0, at)
    return -1


def _read_zip64(fp: BinarySource, locator: bytes, locator_pos: int) -> tuple[_Directory, int]:
    _, disk, record_pos, disk_total = _ZIP64_LOCATOR.unpack(locator)
    if disk or disk_total != 1 or record_pos + _ZIP64_EOCD.size > locator_pos:
        raise ArchiveRejected("corrupt_archive")
    record = _read_at(fp, record_pos, _ZIP64_EOCD.size)
    (sig, record_len, _, _, disk_no, cd_disk, disk_count, count, cd_size,
     cd_offset) = _ZIP64_EOCD.unpack(record)
    if (sig != _ZIP64_EOCD_SIG or disk_no or cd_disk or disk_count != count
            or record_pos + 12 + record_len != locator_pos):
        raise ArchiveRejected("corrupt_archive")
    return _Directory(count, cd_offset, cd_size), record_pos


def _read_central_directory(fp: BinarySource, directory: _Directory) -> list[_Entry]:
    """Parse exactly ``count`` entries, which must fill the directory exactly."""
    if directory.count * _CENTRAL.size > directory.size:
        raise ArchiveRejected("corrupt_archive")
    fp.seek(directory.offset)
    reader = _SequentialReader(fp, directory.size)
    entries = [_read_entry(reader, index) for index in range(directory.count)]
    if reader.remaining:
        raise ArchiveRejected("corrupt_archive")  # the count understates the directory
    return entries


class _SequentialReader:
    """Reads a bounded region front to back (one seek, then small reads the reader buffers)."""

    def __init__(self, fp: BinarySource, length: int) -> None:
        self._fp = fp
        self.remaining = length

    def take(self, n: int) -> bytes:
        if n > self.remaining:
            raise ArchiveRejected("corrupt_archive")
        data = self._fp.read(n)
        if len(data) != n:
            raise ArchiveRejected("corrupt_archive")
        self.remaining -= n
        return data

    def skip(self, n: int) -> None:
        if n > self.remaining:
            raise ArchiveRejected("corrupt_archive")
        if n:
            self._fp.seek(n, io.SEEK_CUR)
        self.remaining -= n


def _read_entry(reader: _SequentialReader, index: int) -> _Entry:
    (sig, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len, comment_len,
     disk, _, external_attr, offset) = _CENTRAL.unpack(reader.take(_CENTRAL.size))
    if sig != _CENTRAL_SIG:
        raise ArchiveRejected("corrupt_archive")
    raw_name = reader.take(name_len)
    extras = _parse_extras(reader.take(extra_len))
    reader.skip(comment_len)
    usize, csize, offset, disk = _apply_zip64(extras.get(_ZIP64_EXTRA), usize, csize, offset,
                                              disk)
    if disk:
        raise ArchiveRejected("corrupt_archive")
    name = _decode_name(raw_name, flags)
    info = MemberInfo(
        index=index,
        display_name=_display_name(name),
        size=usize,
        compressed_size=csize,
        kind=_classify(name, flags, method, external_attr),
    )
    return _Entry(info=info, offset=offset, method=method, flags=flags, crc=crc,
                  name_len=name_len, name_digest=hashlib.blake2b(raw_name).digest())


def _parse_extras(extra: bytes) -> dict[int, bytes]:
    """Split an extra field into ``{header_id: data}``; a field overrunning is corruption."""
    fields: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + size > len(extra):
            raise ArchiveRejected("corrupt_archive")
        fields.setdefault(header_id, extra[pos + 4:pos + 4 + size])
        pos += 4 + size
    return fields


def _apply_zip64(data: bytes | None, usize: int, csize: int, offset: int,
                 disk: int) -> tuple[int, int, int, int]:
    """Replace saturated 32-bit fields by their ZIP64 values, in the order the spec fixes."""
    values = [usize, csize, offset, disk]
    widths = [(_U32_MAX, 8), (_U32_MAX, 8), (_U32_MAX, 8), (_U16_MAX, 4)]
    pos = 0
    for i, (saturated, width) in enumerate(widths):
        if values[i] != saturated:
            continue
        if data is None or pos + width > len(data):
            raise ArchiveRejected("corrupt_archive")
        values[i] = int.from_bytes(data[pos:pos + width], "little")
        pos += width
    return values[0], values[1], values[2], values[3]


def _decode_name(raw: bytes, flags: int) -> str:
    # Bit 11 promises UTF-8; otherwise the spec's default is cp437, which decodes any byte.
    return raw.decode("utf-8", "replace") if flags & _FLAG_UTF8 else raw.decode("cp437")


def _display_name(name: str) -> str:
    # Cc (NUL, escapes, newlines) and Cf (bidi overrides that spoof names), and line and
    # paragraph separators, are unsafe in logs, CSV and HTML alike.
    unsafe = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    clean = "".join("\ufffd" if unicodedata.category(ch) in unsafe else ch for ch in name)
    return clean[:DISPLAY_NAME_MAX]


def _classify(name: str, flags: int, method: int, external_attr: int) -> str:
    mode = external_attr >> 16
    if flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION) or method == _AES:
        return "encrypted"
    if method not in (_STORED, _DEFLATED):
        return "unsupported_compression"
    # Unix mode bits are honoured whatever the host byte says: skipping a symlink is safe,
    # treating one as a file is not.
    if stat.S_ISLNK(mode):
        return "symlink"
    dos_dir = not mode and external_attr & _DOS_DIRECTORY  # Windows writers set no mode
    if name.endswith(("/", "\\")) or stat.S_ISDIR(mode) or dos_dir:
        return "directory"
    basename = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "dicomdir" if basename.upper() == "DICOMDIR" else "file"


def _check_sizes(entries: list[_Entry], limits: ZipLimits) -> None:
    total = 0
    for entry in entries:
        info = entry.info
        if info.size > limits.max_member_bytes:
            raise ArchiveRejected("member_too_large")
        total += info.size
        if total > limits.max_total_bytes:
            raise ArchiveRejected("archive_too_large")
    for entry in entries:
        info = entry.info
        if (info.size >= RATIO_EXEMPT_BYTES
                and info.size > limits.max_ratio * info.compressed_size):
            raise ArchiveRejected("compression_ratio")


def _lower_bound_span(entry: _Entry) -> tuple[int, int]:
    # The local header repeats the name, so its span is at least this long.
    return entry.offset, entry.offset + _LOCAL.size + entry.name_len + entry.info.compressed_size


def _check_spans(entries: list[_Entry], cd_offset: int,
                 span: Callable[[_Entry], tuple[int, int]]) -> None:
    """Reject if any two spans overlap or one runs into the central directory."""
    previous_end = 0
    for start, end in sorted(span(entry) for entry in entries):
        if start < previous_end:
            raise ArchiveRejected("overlapping_entries")
        previous_end = end
    if previous_end > cd_offset:
        raise ArchiveRejected("overlapping_entries")


def _check_local_headers(fp: BinarySource, entries: list[_Entry], cd_offset: int) -> list[_Entry]:
    """Read each local header (in file order, so a buffering reader reads forward) and check
    exact spans, including data descriptors."""
    checked = list(entries)
    spans: dict[int, tuple[int, int]] = {}
    for entry in sorted(entries, key=lambda e: e.offset):
        data_offset, end = _local_span(fp, entry)
        spans[entry.info.index] = (entry.offset, end)
        checked[entry.info.index] = replace(entry, data_offset=data_offset)
    _check_spans(checked, cd_offset, lambda e: spans[e.info.index])
    return checked


def _local_span(fp: BinarySource, entry: _Entry) -> tuple[int, int]:
    """Return (data offset, span end) after checking the local header agrees with the
    directory on name, method and encryption (disagreement lets readers see different files)."""
    header = _read_at(fp, entry.offset, _LOCAL.size)
    sig, _, flags, method, _, _, _, _, _, name_len, extra_len = _LOCAL.unpack(header)
    if sig != _LOCAL_SIG or name_len != entry.name_len:
        raise ArchiveRejected("corrupt_archive")
    raw_name = fp.read(name_len)
    if hashlib.blake2b(raw_name).digest() != entry.name_digest:
        raise ArchiveRejected("corrupt_archive")
    if method != entry.method or (flags ^ entry.flags) & _FLAG_ENCRYPTED:
        raise ArchiveRejected("corrupt_archive")
    extra = fp.read(extra_len)
    if len(extra) != extra_len:
        raise ArchiveRejected("corrupt_archive")
    data_offset = entry.offset + _LOCAL.size + name_len + extra_len
    end = data_offset + entry.info.compressed_size
    if entry.flags & _FLAG_DATA_DESCRIPTOR:
        end += _descriptor_length(fp, end, _ZIP64_EXTRA in _parse_extras(extra))
    return data_offset, end


def _descriptor_length(fp: BinarySource, at: int, zip64: bool) -> int:
    # The descriptor's signature is optional; its sizes are 8 bytes for ZIP64 entries.
    fp.seek(at)
    has_signature = fp.read(4) == _DESCRIPTOR_SIG
    return (4 if has_signature else 0) + (20 if zip64 else 12)


# --- Member streaming ---------------------------------------------------------------------


class _MemberStream(io.RawIOBase):
    """Raw stream of one member's bytes that never yields more than its declared size."""

    def __init__(self, fp: BinarySource, entry: _Entry) -> None:
        super().__init__()
        self._fp = fp
        self._pos = entry.data_offset  # own position: streams over one file may interleave
        self._compressed_left = entry.info.compressed_size
        self._declared = entry.info.size
        self._expected_crc = entry.crc
        self._inflater = zlib.decompressobj(-15) if entry.method == _DEFLATED else None
        self._produced = 0
        self._crc = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._done or not len(view):
            return 0
        # Ask for one byte more than is left so an overlong stream shows itself at once.
        want = min(len(view), self._declared - self._produced + 1)
        data = self._next(want)
        self._produced += len(data)
        if self._produced > self._declared:
            raise MemberRejected("member_too_large")
        self._crc = zlib.crc32(data, self._crc)
        if self._produced == self._declared or not data:
            self._finish()
        view[:len(data)] = data
        return len(data)

    def _read_compressed(self, n: int) -> bytes:
        n = min(n, self._compressed_left)
        if n <= 0:
            return b""
        self._fp.seek(self._pos)
        data = self._fp.read(n)
        if not data:
            raise MemberRejected("corrupt_member")  # the file ends inside the member
        self._pos += len(data)
        self._compressed_left -= len(data)
        return data

    def _next(self, want: int) -> bytes:
        """Up to ``want`` output bytes; empty only at the end of the input."""
        if self._inflater is None:
            return self._read_compressed(want)
        inflater = self._inflater
        while not inflater.eof:
            source = inflater.unconsumed_tail or self._read_compressed(_CHUNK)
            if not source:
                return b""
            try:
                out = inflater.decompress(source, want)  # max_length bounds memory
            except zlib.error as err:
                raise MemberRejected("corrupt_member") from err
            if out:
                return out
        return b""

    def _finish(self) -> None:
        """At the declared size: the input must be fully consumed and the CRC must match."""
        self._done = True
        if self._inflater is not None and not self._inflater.eof:
            if self._next(1):
                raise MemberRejected("member_too_large")
            if not self._inflater.eof:
                raise MemberRejected("corrupt_member")  # deflate stream truncated
        unused = self._inflater.unused_data if self._inflater is not None else b""
        trailing = self._compressed_left > 0 or bool(unused)
        if self._produced != self._declared or trailing:
            raise MemberRejected("corrupt_member")
        if self._crc != self._expected_crc:
            raise MemberRejected("corrupt_member")
