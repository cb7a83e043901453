"""A streaming ``multipart/related`` writer (RFC 2387, PS3.18 §8.6.1.2) for WADO-RS answers.

The framing suits strict parsers (Cornerstone's reads the first part only): the body starts
with ``--<boundary>`` (no preamble, no leading CRLF), each part header is spelled
``Content-Type:``, lines end in CRLF, a part's bytes are followed by ``\\r\\n--<boundary>``
and the body ends with ``\\r\\n--<boundary>--\\r\\n`` (no epilogue)::

    --B\\r\\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\\r\\n\\r\\n
    <bytes>\\r\\n--B\\r\\nContent-Type: ...\\r\\n\\r\\n<bytes>\\r\\n--B--\\r\\n

Parts are consumed lazily, one at a time, and their bytes are passed through in the chunks
they come in: a study streams with one chunk in memory. The boundary is 32 random hex
digits (128 bits), so a part's bytes hold it by chance with probability about 2^-128; the
bytes are not scanned for it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_HEADER_SAFE = frozenset(map(chr, range(0x20, 0x7F)))


@dataclass(frozen=True)
class Part:
    """One body part: its media type (with parameters), extra headers and its bytes.

    ``chunks`` is any iterable of bytes and is read only when the part is written.
    ``headers`` are (name, value) pairs written after ``Content-Type`` (e.g.
    ``Content-Location`` for bulk data).
    """

    content_type: str
    chunks: Iterable[bytes]
    headers: tuple[tuple[str, str], ...] = ()


def new_boundary() -> str:
    """A fresh random boundary (32 hex digits: a token, never quoted)."""
    return secrets.token_hex(16)


def _header(name: str, value: str) -> str:
    text = f"{name}: {value}"
    if not set(text) <= _HEADER_SAFE or ":" in name:
        raise ValueError("part header names and values are printable ASCII on one line")
    return text + "\r\n"


class MultipartWriter:
    """Writes one ``multipart/related`` body whose parts are of ``part_type``.

    ``content_type`` is the response's Content-Type; :meth:`stream` yields the body.
    """

    def __init__(self, part_type: str, boundary: str | None = None) -> None:
        self.part_type = part_type
        self.boundary = boundary or new_boundary()

    @property
    def content_type(self) -> str:
        """``multipart/related; type="<part type>"; boundary=<boundary>``."""
        return f'multipart/related; type="{self.part_type}"; boundary={self.boundary}'

    def part_head(self, part: Part, first: bool) -> bytes:
        """The delimiter and headers before a part's bytes (the first without a CRLF)."""
        lead = "" if first else "\r\n"
        head = "".join(_header(n, v) for n, v in (("Content-Type", part.content_type),
                                                    *part.headers))
        return f"{lead}--{self.boundary}\r\n{head}\r\n".encode("ascii")

    def close(self, wrote_parts: bool) -> bytes:
        """The closing delimiter (a body without parts is just ``--B--``)."""
        lead = "\r\n" if wrote_parts else ""
        return f"{lead}--{self.boundary}--\r\n".encode("ascii")

    def stream(self, parts: Iterable[Part]) -> Iterator[bytes]:
        """The whole body: each part's head and chunks in turn, then the close. Parts are
        taken from ``parts`` one at a time, so an iterator of parts stays lazy."""
        first = True
        for part in parts:
            yield self.part_head(part, first)
            first = False
            for chunk in part.chunks:
                if chunk:
                    yield bytes(chunk)
        yield self.close(not first)
