"""Accept negotiation (PS3.18 §8.7) and the multipart/related writer, byte for byte."""

from __future__ import annotations

import email.parser
import email.policy

import pytest
from pacs.dicomweb import multipart
from pacs.dicomweb.negotiation import (
    MediaRange,
    NotAcceptable,
    Offer,
    choose,
    parse_accept,
    quality,
)
from pacs.errors import BadRequest

from tests.multipart_strict import boundary_of, first_part, parts

EXPLICIT = "1.2.840.10008.1.2.1"
JPEG = "1.2.840.10008.1.2.4.50"
DICOM = "application/dicom"
STORED_JPEG = Offer("multipart/related", DICOM, JPEG, default=True)
AS_EXPLICIT = Offer("multipart/related", DICOM, EXPLICIT, default=False)
ZIP = Offer("application/zip")


def pick(accept, *offers, default_part_type=DICOM):
    return choose(accept, offers, default_part_type=default_part_type)


def test_parse_lists_quoted_and_unquoted_parameters_and_q():
    got = parse_accept('Multipart/Related; type="application/DICOM"; transfer-syntax=*,'
                       ' application/zip;q=0.5 , text/plain; note="a, b; c\\" d";q=0')
    assert got == [
        MediaRange("multipart/related", {"type": "application/dicom", "transfer-syntax": "*"}),
        MediaRange("application/zip", {}, 0.5),
        MediaRange("text/plain", {"note": 'a, b; c" d'}, 0.0)]
    assert parse_accept('multipart/related;type=application/dicom')[0].params == {
        "type": "application/dicom"}
    assert parse_accept(None) == parse_accept("  ") == [MediaRange("*/*")]


@pytest.mark.parametrize("header", [
    "multipart", "*/dicom", 'multipart/related; type="application/dicom',
    "application/zip; q=2", "application/zip; q=0.1234", "application/zip; q=high",
    "application/zip; charset", "appli cation/zip", "application/zip; a=b c",
    ",".join(["*/*"] * 65), "a/" + "b" * 5000])
def test_malformed_accept_is_400(header):
    with pytest.raises(BadRequest) as err:
        parse_accept(header)
    assert err.value.code == "bad_accept"


def test_no_accept_takes_the_first_offer():
    assert pick(None, STORED_JPEG, ZIP) is STORED_JPEG
    assert pick("", ZIP, STORED_JPEG) is ZIP
    assert pick("*/*", STORED_JPEG, ZIP) is STORED_JPEG


def test_transfer_syntax_parameter():
    multipart_dicom = 'multipart/related; type="application/dicom"'
    assert pick(multipart_dicom, STORED_JPEG) is STORED_JPEG  # names none: the default
    assert pick(f"{multipart_dicom}; transfer-syntax=*", STORED_JPEG) is STORED_JPEG
    assert pick(f"{multipart_dicom}; transfer-syntax={JPEG}", STORED_JPEG) is STORED_JPEG
    assert pick(f'{multipart_dicom}; transfer-syntax="{JPEG}"', STORED_JPEG) is STORED_JPEG
    with pytest.raises(NotAcceptable) as err:
        pick(f"{multipart_dicom}; transfer-syntax={EXPLICIT}", STORED_JPEG)
    assert err.value.http_status == 406 and JPEG in str(err.value)
    # an offer that is not the default is chosen only by name, * or */*
    assert pick(f"{multipart_dicom}; transfer-syntax={EXPLICIT}", STORED_JPEG,
                AS_EXPLICIT) is AS_EXPLICIT
    with pytest.raises(NotAcceptable):
        pick(multipart_dicom, AS_EXPLICIT)
    assert pick("*/*", AS_EXPLICIT) is AS_EXPLICIT


def test_part_type_and_its_default():
    assert pick("multipart/related", STORED_JPEG) is STORED_JPEG  # type defaults to dicom
    assert pick('multipart/related; type="*/*"', STORED_JPEG) is STORED_JPEG
    assert pick('multipart/*; type="application/*"', STORED_JPEG) is STORED_JPEG
    for header in ('multipart/related; type="application/octet-stream"',
                   "application/dicom+json", "image/jpeg", "application/*;q=1"):
        with pytest.raises(NotAcceptable):
            pick(header, STORED_JPEG)
    octets = Offer("multipart/related", "application/octet-stream", EXPLICIT)
    assert pick("multipart/related", octets,
                default_part_type="application/octet-stream") is octets
    with pytest.raises(NotAcceptable):
        pick("multipart/related", octets)


def test_q_orders_and_zero_refuses():
    assert pick('multipart/related; type="application/dicom";q=0.4, application/zip;q=0.9',
                STORED_JPEG, ZIP) is ZIP
    assert pick("application/zip;q=0.2, */*;q=0.5", STORED_JPEG, ZIP) is STORED_JPEG
    assert pick("application/zip, multipart/related", STORED_JPEG, ZIP) is STORED_JPEG
    with pytest.raises(NotAcceptable):
        pick("*/*;q=0", STORED_JPEG, ZIP)
    # the most specific range decides: */* allows, application/zip;q=0 refuses the ZIP
    assert pick("application/zip;q=0, */*", ZIP, STORED_JPEG) is STORED_JPEG
    with pytest.raises(NotAcceptable):
        pick("application/zip;q=0, */*", ZIP)
    ranges = parse_accept("application/*;q=0.3, application/zip;q=0.7, */*;q=0.1")
    assert quality(ranges, ZIP) == 0.7
    assert quality(ranges, Offer("application/dicom+json")) == 0.3
    assert quality(ranges, Offer("image/png")) == 0.1


def test_406_lists_the_offers():
    with pytest.raises(NotAcceptable) as err:
        pick("text/html", STORED_JPEG, ZIP)
    assert 'multipart/related; type="application/dicom"' in str(err.value)
    assert "application/zip" in str(err.value)


def test_writer_frames_bytes_exactly():
    writer = multipart.MultipartWriter(DICOM, boundary="b0undary")
    body = b"".join(writer.stream(iter([
        multipart.Part(f"{DICOM}; transfer-syntax={JPEG}", iter([b"ab", b"", b"c"])),
        multipart.Part(DICOM, [b"\r\n--b0undar"], (("Content-Location", "/x"),))])))
    assert writer.content_type == 'multipart/related; type="application/dicom"; boundary=b0undary'
    assert body == (b"--b0undary\r\nContent-Type: application/dicom; transfer-syntax="
                    + JPEG.encode() + b"\r\n\r\nabc\r\n--b0undary\r\nContent-Type: "
                    b"application/dicom\r\nContent-Location: /x\r\n\r\n\r\n--b0undar"
                    b"\r\n--b0undary--\r\n")
    assert first_part(body, boundary_of(writer.content_type)).data == b"abc"
    got = parts(body, "b0undary")
    assert [p.data for p in got] == [b"abc", b"\r\n--b0undar"]
    assert got[1].headers == [("Content-Type", DICOM), ("Content-Location", "/x")]
    # and a standard MIME parser reads the same parts
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {writer.content_type}\r\n\r\n".encode() + body)
    assert [p.get_payload(decode=True) for p in message.iter_parts()] == [
        b"abc", b"\r\n--b0undar"]


def test_writer_is_lazy_and_boundaries_are_fresh():
    taken = []

    def gen():
        for i in range(3):
            taken.append(i)
            yield multipart.Part(DICOM, [bytes([i])])

    stream = multipart.MultipartWriter(DICOM).stream(gen())
    next(stream)
    assert taken == [0]
    assert multipart.new_boundary() != multipart.new_boundary()
    assert len(multipart.new_boundary()) == 32


def test_writer_refuses_header_injection():
    with pytest.raises(ValueError):
        b"".join(multipart.MultipartWriter(DICOM).stream(
            [multipart.Part("application/dicom\r\nX-Evil: 1", [b""])]))
