"""The archive-level checks of an uploaded ZIP: its central directory, parsed as a stream,
and the limits on it.

Every limit is checked before the step it guards: the entry count from the end of central
directory record (or its ZIP64 form) before a single entry is parsed; declared sizes,
compression ratios and entry spans (overlapping spans are the "quoted overlap" zip bomb,
which CPython 3.11's ``zipfile`` accepts) before any member content is read; and each
local header against its directory entry, since a disagreement lets readers see different
files. :func:`read_directory` runs them all.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pacs.zip.errors import ArchiveRejected
from pacs.zip.format import (
    CENTRAL,
    CENTRAL_SIG,
    DESCRIPTOR_SIG,
    EOCD,
    EOCD_MAX_COMMENT,
    EOCD_SIG,
    FLAG_DATA_DESCRIPTOR,
    FLAG_ENCRYPTED,
    LOCAL,
    LOCAL_SIG,
    U16_MAX,
    U32_MAX,
    ZIP64_EOCD,
    ZIP64_EOCD_SIG,
    ZIP64_EXTRA,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIG,
)
from pacs.zip.members import MemberInfo, classify, decode_name, display_name

MIB = 1024**2

#: Members declaring fewer bytes than this are exempt from the ratio check: a small member
#: cannot amplify much whatever its ratio (a 1 MiB file of zeros legitimately deflates
#: ~1000:1), and the per-member and total caps bound it anyway.
RATIO_EXEMPT_BYTES = 1 * MIB


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


class BinarySource(Protocol):
    """What is needed of the archive file: a seekable binary reader (a local file, a
    ``BytesIO`` or a ``google.cloud.storage`` ``BlobReader``)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


@dataclass(frozen=True)
class Entry:
    """Central directory facts kept privately; the raw name is kept only as a digest."""

    info: MemberInfo
    offset: int
    method: int
    flags: int
    crc: int
    name_len: int
    name_digest: bytes
    data_offset: int = -1  # set once the local header has been checked


@dataclass(frozen=True)
class _Directory:
    count: int
    offset: int
    size: int


def read_directory(fp: BinarySource, limits: ZipLimits) -> list[Entry]:
    """Check an archive against ``limits`` and return its entries, local headers checked.

    Only the tail, the central directory and the local headers are read. Raises
    :class:`~pacs.zip.errors.ArchiveRejected` when any archive-level check fails.
    """
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
    tail_len = min(file_size, EOCD.size + EOCD_MAX_COMMENT)
    tail = _read_at(fp, file_size - tail_len, tail_len) if tail_len else b""
    eocd_at = _find_eocd(tail)
    if eocd_at < 0:
        raise ArchiveRejected("not_a_zip")
    eocd_pos = file_size - tail_len + eocd_at
    _, disk, cd_disk, disk_count, count, cd_size, cd_offset, _ = EOCD.unpack_from(tail, eocd_at)
    if disk or cd_disk or disk_count != count:
        raise ArchiveRejected("corrupt_archive")  # multi-volume archives are not supported
    directory, cd_end = _Directory(count, cd_offset, cd_size), eocd_pos
    if eocd_pos >= ZIP64_LOCATOR.size:
        # Take the locator from the tail when it is there: a backward seek costs a range
        # request on a BlobReader.
        locator_at = eocd_at - ZIP64_LOCATOR.size
        locator = (tail[locator_at:eocd_at] if locator_at >= 0 else
                   _read_at(fp, eocd_pos - ZIP64_LOCATOR.size, ZIP64_LOCATOR.size))
        if locator[:4] == ZIP64_LOCATOR_SIG:
            directory, cd_end = _read_zip64(fp, locator, eocd_pos - ZIP64_LOCATOR.size)
    # Strict layout: no prepended data and nothing hidden between the directory and its end
    # record, so every reader agrees on where entries are.
    if directory.offset + directory.size != cd_end:
        raise ArchiveRejected("corrupt_archive")
    return directory


def _find_eocd(tail: bytes) -> int:
    """Index of the last EOCD signature whose comment length reaches exactly the end."""
    at = tail.rfind(EOCD_SIG)
    while at >= 0:
        if len(tail) - at >= EOCD.size:
            comment_len = EOCD.unpack_from(tail, at)[-1]
            if at + EOCD.size + comment_len == len(tail):
                return at
        at = tail.rfind(EOCD_SIG, 0, at)
    return -1


def _read_zip64(fp: BinarySource, locator: bytes, locator_pos: int) -> tuple[_Directory, int]:
    _, disk, record_pos, disk_total = ZIP64_LOCATOR.unpack(locator)
    if disk or disk_total != 1 or record_pos + ZIP64_EOCD.size > locator_pos:
        raise ArchiveRejected("corrupt_archive")
    record = _read_at(fp, record_pos, ZIP64_EOCD.size)
    (sig, record_len, _, _, disk_no, cd_disk, disk_count, count, cd_size,
     cd_offset) = ZIP64_EOCD.unpack(record)
    if (sig != ZIP64_EOCD_SIG or disk_no or cd_disk or disk_count != count
            or record_pos + 12 + record_len != locator_pos):
        raise ArchiveRejected("corrupt_archive")
    return _Directory(count, cd_offset, cd_size), record_pos


def _read_central_directory(fp: BinarySource, directory: _Directory) -> list[Entry]:
    """Parse exactly ``count`` entries, which must fill the directory exactly."""
    if directory.count * CENTRAL.size > directory.size:
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


def _read_entry(reader: _SequentialReader, index: int) -> Entry:
    (sig, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len, comment_len,
     disk, _, external_attr, offset) = CENTRAL.unpack(reader.take(CENTRAL.size))
    if sig != CENTRAL_SIG:
        raise ArchiveRejected("corrupt_archive")
    raw_name = reader.take(name_len)
    extras = _parse_extras(reader.take(extra_len))
    reader.skip(comment_len)
    usize, csize, offset, disk = _apply_zip64(extras.get(ZIP64_EXTRA), usize, csize, offset,
                                              disk)
    if disk:
        raise ArchiveRejected("corrupt_archive")
    name = decode_name(raw_name, flags)
    info = MemberInfo(
        index=index,
        display_name=display_name(name),
        size=usize,
        compressed_size=csize,
        kind=classify(name, flags, method, external_attr),
    )
    return Entry(info=info, offset=offset, method=method, flags=flags, crc=crc,
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
    widths = [(U32_MAX, 8), (U32_MAX, 8), (U32_MAX, 8), (U16_MAX, 4)]
    pos = 0
    for i, (saturated, width) in enumerate(widths):
        if values[i] != saturated:
            continue
        if data is None or pos + width > len(data):
            raise ArchiveRejected("corrupt_archive")
        values[i] = int.from_bytes(data[pos:pos + width], "little")
        pos += width
    return values[0], values[1], values[2], values[3]


def _check_sizes(entries: list[Entry], limits: ZipLimits) -> None:
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


def _lower_bound_span(entry: Entry) -> tuple[int, int]:
    # The local header repeats the name, so its span is at least this long.
    return entry.offset, entry.offset + LOCAL.size + entry.name_len + entry.info.compressed_size


def _check_spans(entries: list[Entry], cd_offset: int,
                 span: Callable[[Entry], tuple[int, int]]) -> None:
    """Reject if any two spans overlap or one runs into the central directory."""
    previous_end = 0
    for start, end in sorted(span(entry) for entry in entries):
        if start < previous_end:
            raise ArchiveRejected("overlapping_entries")
        previous_end = end
    if previous_end > cd_offset:
        raise ArchiveRejected("overlapping_entries")


def _check_local_headers(fp: BinarySource, entries: list[Entry], cd_offset: int) -> list[Entry]:
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


def _local_span(fp: BinarySource, entry: Entry) -> tuple[int, int]:
    """Return (data offset, span end) after checking the local header agrees with the
    directory on name, method and encryption (disagreement lets readers see different files)."""
    header = _read_at(fp, entry.offset, LOCAL.size)
    sig, _, flags, method, _, _, _, _, _, name_len, extra_len = LOCAL.unpack(header)
    if sig != LOCAL_SIG or name_len != entry.name_len:
        raise ArchiveRejected("corrupt_archive")
    raw_name = fp.read(name_len)
    if hashlib.blake2b(raw_name).digest() != entry.name_digest:
        raise ArchiveRejected("corrupt_archive")
    if method != entry.method or (flags ^ entry.flags) & FLAG_ENCRYPTED:
        raise ArchiveRejected("corrupt_archive")
    extra = fp.read(extra_len)
    if len(extra) != extra_len:
        raise ArchiveRejected("corrupt_archive")
    data_offset = entry.offset + LOCAL.size + name_len + extra_len
    end = data_offset + entry.info.compressed_size
    if entry.flags & FLAG_DATA_DESCRIPTOR:
        end += _descriptor_length(fp, end, ZIP64_EXTRA in _parse_extras(extra))
    return data_offset, end


def _descriptor_length(fp: BinarySource, at: int, zip64: bool) -> int:
    # The descriptor's signature is optional; its sizes are 8 bytes for ZIP64 entries.
    fp.seek(at)
    has_signature = fp.read(4) == DESCRIPTOR_SIG
    return (4 if has_signature else 0) + (20 if zip64 else 12)
