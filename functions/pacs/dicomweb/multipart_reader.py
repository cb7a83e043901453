"""A streaming, bounded ``multipart/related`` reader (RFC 2046 §5.1, RFC 2387) for STOW-RS
request bodies (:mod:`pacs.dicomweb.stow`).

The body is read in 64 KiB pieces and never held whole: each part is handed out as a
stream (:meth:`Part.read`) that ends at the next delimiter, so ingest spools it like an
upload. Everything a hostile body could inflate is bounded: the bytes read in all
(:class:`pacs.http.BodyTooLarge` past ``max_bytes``, counted as they arrive, so a chunked
body is cut at the limit), the number of parts (:class:`TooManyParts`), the preamble and
each part's header block (:class:`MultipartError`, 400). A body that ends before the
closing delimiter raises :class:`MultipartError` from the part being read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from pacs.errors import BadRequest, PacsError
from pacs.http import BodyTooLarge

READ_CHUNK = 64 * 1024
MAX_PREAMBLE_BYTES = 8 * 1024
MAX_PART_HEADER_BYTES = 8 * 1024
# RFC 2046 allows 70 characters; Orthanc's DICOMweb plugin (1.7, Debian 12) sends STOW
# bodies with 73 (two UUIDs joined by "-"), so up to 128 are read: still a bounded search.
MAX_BOUNDARY_CHARS = 128
_BCHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ")


class MultipartError(BadRequest):
    """The body is not well-formed multipart (or ends early)."""

    code = "bad_multipart"


class TooManyParts(PacsError):
    """More parts than one request may carry."""

    code = "too_many_parts"
    http_status = 413


def parse_media_type(value: str | None) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=b; c="d"`` → (lower-case media type, parameters with lower-case
    names, values unquoted). Quoted values may hold ``;``."""
    value = value or ""
    media, _, rest = value.partition(";")
    params: dict[str, str] = {}
    while rest.strip():
        name, _, rest = rest.partition("=")
        rest = rest.lstrip()
        if rest.startswith('"'):
            end = rest.find('"', 1)
            end = len(rest) if end < 0 else end
            val, rest = rest[1:end], rest[end + 1:]
            rest = rest.partition(";")[2]
        else:
            val, _, rest = rest.partition(";")
        params[name.strip().lower()] = val.strip()
    return media.strip().lower(), params


def valid_boundary(boundary: str) -> bool:
    """A boundary of RFC 2046's characters, not ending in a space, 1-128 characters long
    (RFC 2046 says 70; Orthanc's plugin sends 73)."""
    return (0 < len(boundary) <= MAX_BOUNDARY_CHARS and not boundary.endswith(" ")
            and all(c in _BCHARS for c in boundary))


class Part:
    """One body part: lower-case header names → values, and its bytes as a stream."""

    def __init__(self, reader: MultipartReader, headers: dict[str, str]) -> None:
        self.headers = headers
        self._reader = reader

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the part (all that is left when ``n < 0``); ``b""`` at its
        end. May return fewer bytes than asked for before the end."""
        if n < 0:
            return b"".join(iter(lambda: self._reader.read_part(READ_CHUNK), b""))
        return self._reader.read_part(n)


class MultipartReader:
    """Reads ``multipart/related`` parts from ``stream`` one at a time (see the module
    docstring). ``bytes_read`` is the body's size so far."""

    def __init__(self, stream: IO[bytes], boundary: str, *, max_bytes: int,
                 max_parts: int) -> None:
        if not valid_boundary(boundary):
            raise MultipartError("the multipart boundary is missing or malformed")
        self._src = stream
        self._delim = b"\r\n--" + boundary.encode("ascii")
        # A CRLF in front, so the first delimiter (at the very start) matches like the rest.
        self._buf = bytearray(b"\r\n")
        self._eof = False
        self._in_part = False
        self._max_bytes, self._max_parts = max_bytes, max_parts
        self.bytes_read = 0

    def _fill(self) -> bool:
        """Read the next piece into the buffer; False at the end of the body."""
        if self._eof:
            return False
        piece = self._src.read(READ_CHUNK)
        if not piece:
            self._eof = True
            return False
        self.bytes_read += len(piece)
        if self.bytes_read > self._max_bytes:
            raise BodyTooLarge(f"the request body is over {self._max_bytes} bytes")
        self._buf += piece
        return True

    def _find(self, needle: bytes, limit: int, what: str) -> int:
        """The index of ``needle`` in the buffer, reading on while it may still come within
        ``limit`` bytes."""
        start = 0
        while True:
            at = self._buf.find(needle, start)
            if at >= 0 and at <= limit:
                return at
            if len(self._buf) > limit + len(needle):
                raise MultipartError(f"the {what} is longer than {limit} bytes")
            start = max(0, len(self._buf) - len(needle) + 1)
            if not self._fill():
                raise MultipartError(f"the body ends inside the {what}")

    def parts(self) -> Iterator[Part]:
        """The parts in order; the rest of a part its consumer did not read is skipped."""
        at = self._find(self._delim, MAX_PREAMBLE_BYTES, "preamble")
        del self._buf[:at + len(self._delim)]
        count = 0
        while True:
            while len(self._buf) < 2 and self._fill():
                pass
            if self._buf[:2] == b"--":
                return  # the closing delimiter; an epilogue is not read
            line_end = self._find(b"\r\n", MAX_PART_HEADER_BYTES, "delimiter line")
            if self._buf[:line_end].strip(b" \t"):
                raise MultipartError("unexpected bytes after a multipart boundary")
            del self._buf[:line_end]  # keep the CRLF: an empty header block is CRLF CRLF
            end = self._find(b"\r\n\r\n", MAX_PART_HEADER_BYTES, "part header")
            headers = _headers(bytes(self._buf[2:end]))
            del self._buf[:end + 4]
            count += 1
            if count > self._max_parts:
                raise TooManyParts(f"more than {self._max_parts} parts in one request")
            self._in_part = True
            yield Part(self, headers)
            while self._in_part:  # skip what the consumer left
                self.read_part(READ_CHUNK)

    def read_part(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current part; ``b""`` once its delimiter is reached."""
        if not self._in_part or n == 0:
            return b""
        keep = len(self._delim) - 1
        while True:
            at = self._buf.find(self._delim)
            if at == 0:
                del self._buf[:len(self._delim)]
                self._in_part = False
                return b""
            # Bytes that cannot be the start of a delimiter are the part's.
            safe = at if at > 0 else len(self._buf) - keep
            if safe > 0:
                out = bytes(self._buf[:min(safe, n)])
                del self._buf[:len(out)]
                return out
            if not self._fill():
                self._in_part = False
                raise MultipartError("the body ends inside a part (no closing boundary)")


def _headers(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    if not block:
        return out
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise MultipartError("a part header line is malformed")
        out[name.strip().lower()] = value.strip()
    return out
