"""The STOW-RS body reader (pacs.dicomweb.multipart_reader): parts as streams, framed the
way clients frame them (dicomweb-client's encoder, a preamble, no part headers, transport
padding), read in pieces of any size; and every bound a hostile body could push."""

from __future__ import annotations

import io
import os

import pytest
from dicomweb_client.api import DICOMwebClient
from pacs.dicomweb import multipart_reader as mr
from pacs.http import BodyTooLarge


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read (a slow chunked body)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self.reads = data, step, 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        n = self._step if n < 0 else min(n, self._step)
        out, self._data = self._data[:n], self._data[n:]
        return out


def read_all(body: bytes, boundary: str, step: int = 1 << 20, piece: int = 1 << 20,
             **bounds) -> list[tuple[dict, bytes]]:
    reader = mr.MultipartReader(Trickle(body, step), boundary,
                                max_bytes=bounds.get("max_bytes", 1 << 30),
                                max_parts=bounds.get("max_parts", 1000))
    out = []
    for part in reader.parts():
        data = b"".join(iter(lambda p=part: p.read(piece), b""))
        out.append((part.headers, data))
    return out


def test_dicomweb_client_framing_round_trips_with_any_piece_size():
    payloads = [os.urandom(5000), b"", b"\r\n--not-the-boundary\r\n" * 3, os.urandom(70000)]
    ctype = ('multipart/related; type="application/dicom"; '
             'boundary="0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"')
    body = DICOMwebClient._encode_multipart_message(payloads, ctype)
    media, params = mr.parse_media_type(ctype)
    assert media == "multipart/related" and params["type"] == "application/dicom"
    for step, piece in ((1, 7), (3, 1 << 20), (65536, 1), (1 << 20, 1 << 20)):
        parts = read_all(body, params["boundary"], step=step, piece=piece)
        assert [p[1] for p in parts] == payloads
        assert all(h["content-type"] == "application/dicom" for h, _ in parts)


def test_preamble_padding_no_headers_and_unread_parts_are_skipped():
    body = (b"preamble text\r\n--b1  \r\n\r\nfirst\r\n--b1\r\nContent-Type: application/dicom"
            b"\r\nX-Other:  v \r\n\r\nsecond\r\n--b1--\r\nepilogue")
    assert read_all(body, "b1") == [({}, b"first"), ({"content-type": "application/dicom",
                                                      "x-other": "v"}, b"second")]
    reader = mr.MultipartReader(io.BytesIO(body), "b1", max_bytes=1000, max_parts=10)
    assert len(list(reader.parts())) == 2  # nothing read from either: skipped


def test_the_body_ending_inside_a_part_is_an_error_of_that_part():
    body = b"--b\r\n\r\nwhole\r\n--b\r\n\r\ncut short"
    reader = mr.MultipartReader(io.BytesIO(body), "b", max_bytes=1000, max_parts=10)
    parts = reader.parts()
    assert next(parts).read() == b"whole"
    with pytest.raises(mr.MultipartError):
        next(parts).read()


@pytest.mark.parametrize("body", [
    b"no boundary at all" * 1000,
    b"--b\r\n" + b"X: " + b"v" * 9000 + b"\r\n\r\n",  # header block over 8 KiB
    b"--b\r\nno colon here\r\n\r\nx\r\n--b--",
    b"--bjunk\r\n\r\nx\r\n--b--",
])
def test_malformed_and_oversized_framing_is_refused(body):
    with pytest.raises(mr.MultipartError):
        read_all(body, "b")


def test_bounds_on_bytes_and_parts():
    body = b"".join(b"--b\r\n\r\n" + b"x" * 100 + b"\r\n" for _ in range(20)) + b"--b--"
    with pytest.raises(BodyTooLarge):
        read_all(body, "b", step=64, max_bytes=1000)
    with pytest.raises(mr.TooManyParts):
        read_all(body, "b", max_parts=5)
    assert len(read_all(body, "b", max_parts=20)) == 20


def test_an_endless_body_is_cut_at_the_limit():
    class Endless(io.RawIOBase):
        def read(self, n=-1):
            return b"x" * (n if n > 0 else 4096)

    reader = mr.MultipartReader(Endless(), "b", max_bytes=1 << 20, max_parts=10)
    with pytest.raises((BodyTooLarge, mr.MultipartError)):
        list(reader.parts())
    assert reader.bytes_read <= (1 << 20) + mr.READ_CHUNK


ORTHANC_BOUNDARY = ("fdbdeff8-9bf6-4168-abba-6efc5beb813f-"  # Orthanc's plugin: 73 characters
                    "fdbdeff8-9bf6-4168-abba-6efc5beb813f")


@pytest.mark.parametrize(("boundary", "ok"), [("abc", True), ("a" * 70, True),
                                               (ORTHANC_BOUNDARY, True), ("a" * 128, True),
                                               ("a" * 129, False), ("", False),
                                               ("bad\r\n", False), ("ends ", False)])
def test_boundary_syntax(boundary, ok):
    assert mr.valid_boundary(boundary) is ok


def test_orthanc_plugin_stow_framing_is_read():
    """Orthanc's DICOMweb plugin 1.7 frames a STOW body like this (captured from it): a
    73-character boundary, Content-Type and Content-Length part headers, no preamble."""
    payloads = [os.urandom(39206), os.urandom(100)]
    body = b"".join(b"--" + ORTHANC_BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n"
                    + f"Content-Length: {len(p)}\r\n\r\n".encode() + p + b"\r\n"
                    for p in payloads) + b"--" + ORTHANC_BOUNDARY.encode() + b"--\r\n"
    ctype = f'multipart/related; type="application/dicom"; boundary={ORTHANC_BOUNDARY}'
    media, params = mr.parse_media_type(ctype)
    assert media == "multipart/related" and mr.valid_boundary(params["boundary"])
    assert [data for _, data in read_all(body, params["boundary"], step=4096)] == payloads
