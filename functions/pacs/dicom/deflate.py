"""Deflated Explicit VR Little Endian files, inflated in bounded memory.

pydicom inflates a deflated dataset with one unbounded ``zlib.decompress``, so a few KiB
can become gigabytes. Here the stream is inflated in chunks with a hard cap on the output
(:func:`inflate`, used by :mod:`pacs.dicom.header`), and :func:`inflated_file` gives
decoders that cannot inflate in bounded memory themselves an inflated copy.
"""

from __future__ import annotations

import io
import warnings
import zlib
from typing import BinaryIO

from pydicom.filereader import _read_file_meta_info

from pacs.dicom.bounded import DEFAULT_MAX_ELEMENTS, BoundedReader, Budget, BudgetExceeded
from pacs.dicom.errors import PARSE_ERRORS, HeaderRejected
from pacs.dicom.fields import uid_text

#: Deflated Explicit VR Little Endian.
DEFLATED = "1.2.840.10008.1.2.1.99"

_INFLATE_IN_CHUNK = 256 * 1024
_INFLATE_OUT_CHUNK = 1024 * 1024


def inflate(
    fileobj: BinaryIO, start: int, end: int, *, cap: int,
    sink: io.BytesIO | None = None, keep: int = 0,
) -> int:
    """Inflate the raw deflate stream in ``fileobj[start:end]``; return the inflated size.

    Without a ``sink`` the output is discarded, so a bomb costs no memory. With one, the
    first ``keep`` inflated bytes are written to it and inflation stops there (the return
    value is then only a lower bound). More than ``cap`` inflated bytes raise
    ``deflate_bomb``; a stream without its final block is corrupt.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    pos = start
    exhausted = False
    while not inflater.eof:
        chunk = b""
        if pos < end:
            fileobj.seek(pos)
            chunk = fileobj.read(min(_INFLATE_IN_CHUNK, end - pos))
            pos += len(chunk)
        if not chunk:
            if exhausted:
                break
            exhausted = True  # one more round with no input drains buffered output
        pending = chunk
        while not inflater.eof:
            out = inflater.decompress(pending, _INFLATE_OUT_CHUNK)
            pending = inflater.unconsumed_tail
            total += len(out)
            if total > cap:
                raise HeaderRejected("deflate_bomb")
            if sink is not None:
                sink.write(out[: max(0, keep - sink.tell())])
                if sink.tell() >= keep:
                    return total
            if not pending and len(out) < _INFLATE_OUT_CHUNK:
                break  # input used up and output not capped: nothing buffered
    if not inflater.eof:
        raise HeaderRejected("corrupt")
    return total


def inflated_file(fileobj: BinaryIO | bytes, size: int, *, inflate_max_bytes: int) -> io.BytesIO:
    """Return an in-memory copy of a Deflated Explicit VR Little Endian file, inflated.

    The preamble and file meta are kept byte for byte (the Transfer Syntax UID still says
    deflated), followed by the inflated dataset: decode it as Explicit VR Little Endian.
    For decoders that cannot inflate in bounded memory themselves (pydicom inflates with
    one unbounded ``zlib.decompress``). Raises :class:`~pacs.dicom.errors.HeaderRejected`.
    """
    if isinstance(fileobj, bytes | bytearray | memoryview):
        fileobj = io.BytesIO(bytes(fileobj))
    budget = Budget(DEFAULT_MAX_ELEMENTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = BoundedReader(fileobj, limit=size, size=size, budget=budget)
            head = reader.read(132)
            if len(head) < 132 or head[128:132] != b"DICM":
                raise HeaderRejected("not_dicom")
            meta = _read_file_meta_info(reader)
            if uid_text(meta.get("TransferSyntaxUID")) != DEFLATED:
                raise HeaderRejected("not_dicom")
            start = reader.tell()
            total = inflate(fileobj, start, size, cap=inflate_max_bytes)
            out = io.BytesIO()
            fileobj.seek(0)
            out.write(fileobj.read(start))
            inflate(fileobj, start, size, cap=inflate_max_bytes, sink=out,
                    keep=start + total)
        except HeaderRejected:
            raise
        except (*PARSE_ERRORS, BudgetExceeded, MemoryError):
            raise HeaderRejected("corrupt") from None
    out.seek(0)
    return out
