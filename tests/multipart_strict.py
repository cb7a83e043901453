"""A strict ``multipart/related`` reader for tests: it reads a body the way the strictest
DICOMweb clients do (Cornerstone's WADO-RS loader reads the first part only and expects the
body to start with the boundary and the part header spelled ``Content-Type:``), and fails on
anything lenient parsers forgive: a preamble, a leading CRLF, bare LF line ends, header names
spelled otherwise, a missing close delimiter, an epilogue."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StrictPart:
    headers: list[tuple[str, str]]
    data: bytes

    @property
    def content_type(self) -> str:
        return dict(self.headers)["Content-Type"]


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a ``multipart/related`` Content-Type (checked)."""
    media, *params = [p.strip() for p in content_type.split(";")]
    assert media == "multipart/related", content_type
    found = dict(p.split("=", 1) for p in params)
    assert "boundary" in found, content_type
    return found["boundary"].strip('"')


def first_part(body: bytes, boundary: str) -> StrictPart:
    """Cornerstone's view: the first part, from a body that must start with the boundary."""
    marker = f"--{boundary}\r\n".encode()
    assert body.startswith(marker), body[:80]
    head_end = body.index(b"\r\n\r\n", len(marker))
    headers = []
    for line in body[len(marker):head_end].split(b"\r\n"):
        assert b"\n" not in line and b"\r" not in line, line
        name, sep, value = line.decode("ascii").partition(": ")
        assert sep and name in ("Content-Type", "Content-Location", "Content-Length"), line
        headers.append((name, value))
    assert headers and headers[0][0] == "Content-Type", headers
    start = head_end + 4
    end = body.index(f"\r\n--{boundary}".encode(), start)
    return StrictPart(headers, body[start:end])


def parts(body: bytes, boundary: str) -> list[StrictPart]:
    """Every part, checking the framing exactly: starts with ``--B\\r\\n``, parts separated
    by ``\\r\\n--B\\r\\n``, ends with ``\\r\\n--B--\\r\\n`` and nothing after."""
    close = f"\r\n--{boundary}--\r\n".encode()
    assert body.endswith(close), body[-80:]
    out = []
    rest = body
    delimiter = f"\r\n--{boundary}".encode()
    while True:
        part = first_part(rest, boundary)
        out.append(part)
        head_len = rest.index(b"\r\n\r\n") + 4
        after = head_len + len(part.data)
        assert rest[after:after + len(delimiter)] == delimiter
        tail = rest[after + len(delimiter):]
        if tail == b"--\r\n":
            return out
        assert tail.startswith(b"\r\n"), tail[:20]
        rest = f"--{boundary}".encode() + tail
