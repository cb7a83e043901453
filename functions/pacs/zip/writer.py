"""Writing a ZIP archive as a stream of bytes (the study download), never held in memory.

Built on the standard library's :mod:`zipfile`, which writes to an unseekable stream: each
member's local header is followed by its bytes and a data descriptor (sizes and CRC-32 after
the data), the central directory comes last, and ZIP64 records are written when a member or
the archive passes 4 GiB or 65,535 entries. Our own :mod:`pacs.zip` code only *reads*
archives; a second writer of the format would be new code to get right, while ``zipfile``'s
writer is the one CPython tests and every unzip tool reads. What it writes goes into a sink
that is emptied after every chunk, so memory holds one chunk plus the central directory's
entries (about 100 bytes per member).

Members are stored, not deflated: DICOM pixel data is mostly compressed already or compresses
little for the CPU it costs (a function instance has one or two CPUs), and stored members
stream at Storage's speed.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

ZIP64_LIMIT = zipfile.ZIP64_LIMIT


@dataclass(frozen=True)
class Member:
    """One file of the archive: its name, its size in bytes (known up front, so the
    header can say whether ZIP64 is needed) and its bytes, read only when written."""

    name: str
    size: int
    chunks: Iterable[bytes]


class _Sink(io.RawIOBase):
    """An unseekable file that keeps what was written until :meth:`take`."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._buffer += data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        out = bytes(self._buffer)
        self._buffer.clear()
        return out


def stream_zip(members: Iterable[Member], when: datetime) -> Iterator[bytes]:
    """The archive's bytes, member by member (``members`` is consumed lazily).

    ``when`` is the modification time written for every member. A member whose bytes do
    not add up to its declared size raises ``ValueError`` (the response is cut short rather
    than ending in an archive whose directory disagrees with its data).
    """
    sink = _Sink()
    date_time = (max(when.year, 1980), when.month, when.day, when.hour, when.minute,
                 when.second)
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for member in members:
            info = zipfile.ZipInfo(member.name, date_time)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = member.size
            info.external_attr = 0o644 << 16
            written = 0
            with zf.open(info, "w", force_zip64=member.size >= ZIP64_LIMIT) as out:
                for chunk in member.chunks:
                    written += len(chunk)
                    if written > member.size:
                        raise ValueError(f"member {member.name!r} is longer than declared")
                    out.write(chunk)
                    if data := sink.take():
                        yield data
            if written != member.size:
                raise ValueError(f"member {member.name!r} is shorter than declared")
            if data := sink.take():
                yield data
    if data := sink.take():
        yield data
