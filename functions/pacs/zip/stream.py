"""Streaming one member of a checked archive: a bounded inflater that never yields more
bytes than the member declares (a lying header) and verifies the CRC at the end.
"""

from __future__ import annotations

import io
import zlib
from typing import Any

from pacs.zip.directory import BinarySource, Entry
from pacs.zip.errors import MemberRejected
from pacs.zip.format import DEFLATED

#: Compressed bytes read at a time, and the buffer size of a member's reader.
CHUNK = 64 * 1024


class MemberStream(io.RawIOBase):
    """Raw stream of one member's bytes that never yields more than its declared size."""

    def __init__(self, fp: BinarySource, entry: Entry) -> None:
        super().__init__()
        self._fp = fp
        self._pos = entry.data_offset  # own position: streams over one file may interleave
        self._compressed_left = entry.info.compressed_size
        self._declared = entry.info.size
        self._expected_crc = entry.crc
        self._inflater = zlib.decompressobj(-15) if entry.method == DEFLATED else None
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
            source = inflater.unconsumed_tail or self._read_compressed(CHUNK)
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
