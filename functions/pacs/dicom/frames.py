"""Where each frame of an instance lies in its stored object: the byte ranges that WADO-RS
``/frames`` reads, computed once from the bounded header parse (:mod:`pacs.dicom.header`).

A :class:`FrameTable` lists, per frame (from 0), the ``(offset, length)`` ranges whose
concatenation is the frame's bytes:

* native pixel data: one range per frame, ``frame_bytes`` apart from the pixel data value
  (Rows x Columns x Samples x BitsAllocated / 8, YBR_FULL_422 at 2 samples per pixel);
  frames that do not start on a byte (BitsAllocated 1 with an odd frame size) are refused.
  For a deflated file the ranges are in the inflated file (:func:`pacs.dicom.deflate.
  inflated_file`) and ``inflate`` is set;
* encapsulated pixel data: the fragments of each frame, found by the Extended Offset Table,
  the Basic Offset Table, one fragment per frame, all fragments for one frame, or (no
  table) the codec's start-of-image marker opening each frame's first fragment; the item
  headers are walked (8 bytes each, at most ``MAX_FRAGMENTS``), never the fragment data.

Every frame equals what pydicom gives (``Dataset.PixelData`` sliced for native data,
``pydicom.encaps.generate_frames`` for encapsulated data), which the tests check over
pydicom's test files. Pure: no cloud, bounded reads only. Failures raise
:class:`FramesUnavailable` with a stable ``code``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from pacs.dicom.deflate import DEFLATED
from pacs.dicom.errors import HeaderRejected
from pacs.dicom.fields import as_int, as_text, element_value
from pacs.dicom.structure import (
    ITEM_TAG,
    NATIVE_TRANSFER_SYNTAXES,
    SEQUENCE_DELIMITER_TAG,
    UNDEFINED_LENGTH,
)
from pacs.errors import PacsError

#: Most fragments walked in encapsulated pixel data (8 bytes read each).
MAX_FRAGMENTS = 100_000
#: Most frames recorded for one instance (an enhanced multi-frame object rarely has 5,000).
MAX_FRAMES = 100_000
_INFLATE_IN = 256 * 1024
_INFLATE_OUT = 1024 * 1024
# Codec start markers that open a frame's first fragment: JPEG SOI, JPEG 2000 codestream
# SOC+SIZ, a JP2 signature box.
_FRAME_STARTS = (b"\xff\xd8\xff", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")


class FramesUnavailable(PacsError):
    """No frame table for this instance: ``no_pixel_data``, ``unaligned``, ``corrupt``,
    ``too_many_frames``."""

    code = "frames_unavailable"
    http_status = 422

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or f"the frames of this instance cannot be located ({code})",
                         code=code)


@dataclass(frozen=True)
class FrameTable:
    """Per frame, the ``(offset, length)`` ranges of its bytes in the object (or, with
    ``inflate``, in the inflated file)."""

    transfer_syntax: str
    frames: tuple[tuple[tuple[int, int], ...], ...]
    inflate: bool = False
    #: With ``inflate``: where the deflated stream starts in the object (the inflated file
    #: keeps the bytes before it as they are).
    stream_start: int = 0

    @property
    def native(self) -> bool:
        return self.transfer_syntax in NATIVE_TRANSFER_SYNTAXES

    def to_json(self) -> dict[str, Any]:
        """Compact JSON form (kept in the series' frame index)."""
        return {"ts": self.transfer_syntax, "inflate": self.inflate, "start": self.stream_start,
                "frames": [[v for r in frame for v in r] for frame in self.frames]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrameTable:
        frames = tuple(tuple((int(f[i]), int(f[i + 1])) for i in range(0, len(f), 2))
                       for f in data["frames"])
        return cls(str(data["ts"]), frames, bool(data.get("inflate")), int(data.get("start", 0)))


def frame_table(header: Any, ds: Any, fileobj: BinaryIO | None, size: int) -> FrameTable:
    """The frame table of an instance read by :func:`pacs.dicom.header.read_header_dataset`.

    ``fileobj`` (``size`` bytes) is the stored object, read only for encapsulated data.
    """
    if header.pixel_data_offset is None or header.pixel_data_length is None:
        raise FramesUnavailable("no_pixel_data")
    count = max(1, as_int(element_value(ds, "NumberOfFrames")) or 1)
    if count > MAX_FRAMES:
        raise FramesUnavailable("too_many_frames")
    syntax = header.transfer_syntax_uid
    if syntax in NATIVE_TRANSFER_SYNTAXES:
        return _native(header, ds, count)
    if fileobj is None:
        raise FramesUnavailable("corrupt")
    return FrameTable(syntax, _encapsulated(ds, fileobj, size, header.pixel_data_offset,
                                            count, bool(ds.original_encoding[1])))


def _native(header: Any, ds: Any, count: int) -> FrameTable:
    rows, columns = as_int(element_value(ds, "Rows")), as_int(element_value(ds, "Columns"))
    bits = as_int(element_value(ds, "BitsAllocated"))
    samples = as_int(element_value(ds, "SamplesPerPixel")) or 1
    if not rows or not columns or not bits or rows < 0 or columns < 0 or bits < 0:
        raise FramesUnavailable("no_pixel_data")
    photometric = as_text(element_value(ds, "PhotometricInterpretation"))
    per_pixel = 2 if photometric == "YBR_FULL_422" and samples == 3 else samples
    frame_bits = rows * columns * per_pixel * bits
    if frame_bits % 8:
        raise FramesUnavailable("unaligned")
    length = frame_bits // 8
    if length * count > header.pixel_data_length:
        raise FramesUnavailable("corrupt")
    inflate = header.transfer_syntax_uid == DEFLATED
    start = header.pixel_data_offset + (header.dataset_offset if inflate else 0)
    frames = tuple(((start + i * length, length),) for i in range(count))
    return FrameTable(header.transfer_syntax_uid, frames, inflate,
                      header.dataset_offset if inflate else 0)


def _items(fileobj: BinaryIO, start: int, size: int, little: bool) -> list[tuple[int, int]]:
    """(value offset, length) of every item up to the sequence delimiter."""
    fmt = "<HHL" if little else ">HHL"
    out, pos = [], start
    for _ in range(MAX_FRAGMENTS + 1):
        fileobj.seek(pos)
        head = fileobj.read(8)
        if len(head) < 8:
            raise FramesUnavailable("corrupt")
        group, elem, length = struct.unpack(fmt, head)
        tag = group << 16 | elem
        if tag == SEQUENCE_DELIMITER_TAG:
            return out
        if tag != ITEM_TAG or length == UNDEFINED_LENGTH or pos + 8 + length > size:
            raise FramesUnavailable("corrupt")
        out.append((pos + 8, length))
        pos += 8 + length
    raise FramesUnavailable("too_many_frames")


def _encapsulated(ds: Any, fileobj: BinaryIO, size: int, start: int, count: int,
                  little: bool) -> tuple[tuple[tuple[int, int], ...], ...]:
    items = _items(fileobj, start, size, little)
    if not items:
        raise FramesUnavailable("corrupt")
    (bot_at, bot_len), fragments = items[0], items[1:]
    if not fragments:
        raise FramesUnavailable("no_pixel_data")
    first_item = fragments[0][0] - 8
    # Item offsets relative to the first fragment's item header, as offset tables count.
    relative = [offset - 8 - first_item for offset, _ in fragments]
    extended = _extended_offsets(ds, little)
    if extended is not None:
        starts = extended
    elif bot_len:
        fileobj.seek(bot_at)
        raw = fileobj.read(bot_len)
        if len(raw) != bot_len or bot_len % 4:
            raise FramesUnavailable("corrupt")
        starts = list(struct.unpack(f"{'<' if little else '>'}{bot_len // 4}L", raw))
    elif count == 1:
        starts = [0]
    elif len(fragments) == count:
        starts = relative
    else:
        starts = [rel for rel, (offset, _) in zip(relative, fragments, strict=True)
                  if _opens_frame(fileobj, offset)]
    if len(starts) != count or starts != sorted(starts) or starts[0] != 0:
        raise FramesUnavailable("corrupt")
    index = {rel: i for i, rel in enumerate(relative)}
    if any(s not in index for s in starts):
        raise FramesUnavailable("corrupt")
    bounds = [index[s] for s in starts] + [len(fragments)]
    return tuple(tuple(fragments[bounds[i]:bounds[i + 1]]) for i in range(count))


def _extended_offsets(ds: Any, little: bool) -> list[int] | None:
    raw = ds.get(0x7FE00001)
    value = getattr(raw, "value", None)
    if not value or not isinstance(value, bytes) or len(value) % 8:
        return None
    return list(struct.unpack(f"{'<' if little else '>'}{len(value) // 8}Q", value))


def _opens_frame(fileobj: BinaryIO, offset: int) -> bool:
    fileobj.seek(offset)
    head = fileobj.read(12)
    return any(head.startswith(marker) for marker in _FRAME_STARTS)


def read_frame(fileobj: BinaryIO, table: FrameTable, number: int) -> bytes:
    """Frame ``number`` (from 1) read from ``fileobj`` (the object, or the inflated file when
    ``table.inflate``). Raises ``IndexError`` for a number out of range."""
    if not 1 <= number <= len(table.frames):
        raise IndexError(number)
    out = bytearray()
    for offset, length in table.frames[number - 1]:
        fileobj.seek(offset)
        chunk = fileobj.read(length)
        if len(chunk) != length:
            raise FramesUnavailable("corrupt")
        out += chunk
    return bytes(out)


def read_deflated_frames(fileobj: BinaryIO, size: int, table: FrameTable, numbers: list[int],
                         *, cap: int) -> Iterator[bytes]:
    """Frames ``numbers`` (from 1, in the order given) of a deflated object, inflating its
    stream once, front to back, and keeping only the bytes of the frames asked for: memory
    holds one inflate chunk and those frames, whatever the object's size. More than ``cap``
    inflated bytes raise ``HeaderRejected("deflate_bomb")``; a frame past the end of the
    stream raises :class:`FramesUnavailable` (``corrupt``)."""
    wanted: dict[int, list[tuple[int, int]]] = {}
    for number in numbers:
        if not 1 <= number <= len(table.frames):
            raise IndexError(number)
        wanted[number] = [(o - table.stream_start, n) for o, n in table.frames[number - 1]]
    end = max(o + n for ranges in wanted.values() for o, n in ranges)
    found = {number: bytearray() for number in wanted}
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pos, read_at, done = table.stream_start, 0, False
    while read_at < end and not done:
        fileobj.seek(pos)
        chunk = fileobj.read(min(_INFLATE_IN, size - pos)) if pos < size else b""
        pos += len(chunk)
        done = not chunk
        pending = chunk
        while True:
            out = inflater.decompress(pending, _INFLATE_OUT)
            pending = inflater.unconsumed_tail
            for number, ranges in wanted.items():
                for offset, length in ranges:
                    lo, hi = max(offset, read_at), min(offset + length, read_at + len(out))
                    if lo < hi:
                        found[number] += out[lo - read_at:hi - read_at]
            read_at += len(out)
            if read_at > cap:
                raise HeaderRejected("deflate_bomb")
            if inflater.eof or read_at >= end or (not pending and len(out) < _INFLATE_OUT):
                break
        if inflater.eof:
            break
    for number in numbers:
        if len(found[number]) != sum(n for _, n in wanted[number]):
            raise FramesUnavailable("corrupt")
        yield bytes(found[number])
