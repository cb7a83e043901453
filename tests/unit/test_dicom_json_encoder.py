"""The raw-element DICOM JSON encoder (``pacs.dicom.json_encoder``) against pydicom itself.

Every corpus file the header reader accepts (pydicom's test files and the pydicom-data
wheel: deflated, big endian, implicit VR, sequences, private tags, many character sets) and
files built here for the edge cases: the encoder must give what pydicom's ``to_json_dict``
gives, byte for byte after ``json.dumps``, and raise where pydicom raises (then
``dataset_json`` uses pydicom for the whole dataset). The reference is pydicom run on a
separate read of the same bytes, never a stored fixture.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from typing import Any

import pydicom
import pytest
from pacs.dicom import json_encoder
from pacs.dicom.header import HeaderRejected, read_header_dataset
from pacs.dicom.json_header import (
    _MARK,
    BULK_THRESHOLD,
    dataset_json,
    dataset_json_reference,
)
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tests.dicom_builders import LIMITS, el, identity, padded, part10, text
from tests.dicom_corpus import corpus, corpus_file

CORPUS = corpus()


def read(data: bytes) -> tuple[Any, Any]:
    return read_header_dataset(io.BytesIO(data), len(data), **LIMITS)


def pydicom_json(ds: Any) -> str | type[Exception]:
    """pydicom's own encoding of ``ds`` (no suppression): its JSON, or the exception type."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return json.dumps(ds.to_json_dict(BULK_THRESHOLD, lambda _e: _MARK))
        except Exception as err:  # noqa: BLE001 - the encoder must raise where this does
            return type(err)


def encoder_json(ds: Any) -> str | None:
    """The encoder's JSON of ``ds``, or None when it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return json.dumps(json_encoder.encode_dataset(ds, BULK_THRESHOLD, lambda _p: _MARK))
        except Exception:  # noqa: BLE001
            return None


def assert_like_pydicom(data: bytes) -> None:
    """On separate reads of ``data``: the encoder equals ``to_json_dict`` (or raises with
    it), and ``dataset_json`` equals ``dataset_json_reference`` as JSON text."""
    header, ds = read(data)
    expected = pydicom_json(read(data)[1])
    got = encoder_json(ds)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert got is None, f"pydicom raises {expected.__name__}, the encoder did not"
    assert outcome(dataset_json, data) == outcome(dataset_json_reference, data)


def outcome(function: Any, data: bytes) -> str | type[Exception]:
    """``function``'s JSON text of a fresh read of ``data``, or the type of its exception
    (pydicom raises IndexError for several names one of which is empty)."""
    header, ds = read(data)
    try:
        return json.dumps(function(ds, header))
    except Exception as err:  # noqa: BLE001 - compared with the reference's
        return type(err)


def accepted(name: str) -> bytes:
    data = CORPUS[name].read_bytes()
    try:
        read(data)
    except HeaderRejected:
        pytest.skip("rejected by the header reader")
    return data


# --------------------------------------------------------------------------- corpus

@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_encodes_like_pydicom(name: str) -> None:
    assert_like_pydicom(accepted(name))


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_read_in_full_encodes_like_pydicom(name: str) -> None:
    """Also on pydicom's own read (every element still raw, sequences too)."""
    accepted(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = pydicom.dcmread(CORPUS[name], stop_before_pixels=True)
        second = pydicom.dcmread(CORPUS[name], stop_before_pixels=True)
    expected = pydicom_json(second)
    got = encoder_json(first)
    assert got == expected if isinstance(expected, str) else got is None


@pytest.mark.parametrize("name", ["CT_small.dcm", "693_UNCI.dcm", "MR_small_bigendian.dcm",
                                  "image_dfl.dcm", "MR_small_implicit.dcm"])
def test_common_files_take_the_fast_path(name: str) -> None:
    """pydicom converts no element on the fast path but the sequences it parses: what the
    header read left raw is still raw after encoding (apart from sequences, and Pixel
    Representation, which pydicom reads when it parses a sequence)."""
    data = corpus_file(name).read_bytes()
    _header, ds = read(data)
    raw_before = {tag for tag, elem in ds._dict.items() if type(elem) is RawDataElement}

    json_encoder.encode_dataset(ds, BULK_THRESHOLD, lambda _p: _MARK)

    converted = {tag for tag in raw_before
                 if type(ds._dict[tag]) is not RawDataElement and tag != 0x00280103}
    assert raw_before
    assert {ds[tag].VR for tag in converted if not ambiguous(tag)} <= {"SQ"}


def ambiguous(tag: int) -> bool:
    """A dictionary VR such as 'US or SS' (implicit VR files): pydicom's own path."""
    try:
        return " or " in dictionary_VR(tag)
    except KeyError:
        return False


# --------------------------------------------------------------------------- built files

def body(*elements: bytes) -> bytes:
    return part10(identity() + b"".join(elements))


CHARSET = 0x00080005


@pytest.mark.parametrize("value", [
    "Yamada^Tarou=山田^太郎=やまだ^たろう", "A^B=", "=B", "==C", "A^B=C=D=E", "^", "A\\B",
    "A\\=X", "A\\\\B", "\\", "A^B \\C ", "   ", "Name\x00",
])
def test_person_names_in_utf8(value: str) -> None:
    assert_like_pydicom(body(el(CHARSET, "CS", padded("ISO_IR 192")),
                             el(0x00081070, "PN", padded(value))))


@pytest.mark.parametrize("charset, raw", [
    ("ISO_IR 100", "Buc^Jérôme".encode("latin-1")),
    ("ISO_IR 144", "Люкceмбypг^Иван".encode("iso8859_5")),
    ("ISO_IR 192", b"\xff\xfeBad^UTF8"),  # undecodable: pydicom's replacement characters
    ("ISO_IR 126", b"\xae"),  # a byte ISO 8859-7 leaves undefined
    ("\\ISO 2022 IR 87", b"\x1b$B;3ED\x1b(B^\x1b$BB@O:"),
    ("ISO 2022 IR 6\\ISO 2022 IR 100", b"Buc^J\x1b-A\xe9r\xf4me"),
    ("ISO_IR 13", b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3"),
    ("NOT A CHARSET", b"Plain^Name"),
    ("", "Wéird".encode("latin-1")),
])
def test_text_in_character_sets(charset: str, raw: bytes) -> None:
    value = raw + (b" " if len(raw) % 2 else b"")
    assert_like_pydicom(body(
        el(CHARSET, "CS", padded(charset)) if charset else b"",
        el(0x00081030, "LO", value), el(0x00081070, "PN", value),
        el(0x00204000, "LT", value), el(0x00321066, "UT", value),
    ))


@pytest.mark.parametrize("value", [
    "1.5", " -0 ", "1e400", "-1E-3", ".5", "1.", "+2", "1_0", "nan", "Infinity", "1,5",
    "1\\\\2", "1\\2\\3", "  ", "\t1", "²", "0.1234567890123456789", "1.0\\ 2.5 ", "1e",
])
def test_decimal_strings(value: str) -> None:
    assert_like_pydicom(body(el(0x00280030, "DS", padded(value)),
                             el(0x00181050, "DS", padded(value))))


@pytest.mark.parametrize("value", [
    "12", " 12 ", "+3", "-0", "007", "1.0", "1.5", "99999999999", "2147483648",
    "1234567890123456789", "1e3", "abc", "1\\\\2", "1\\2", "\\", "  ", "1_000",
])
def test_integer_strings(value: str) -> None:
    assert_like_pydicom(body(el(0x00200013, "IS", padded(value))))


def el32(tag: int, vr: str, value: bytes) -> bytes:
    """An explicit VR little endian element with a 32-bit length (SV, UV)."""
    return (struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode() + b"\0\0"
            + struct.pack("<L", len(value)) + value)


@pytest.mark.parametrize("vr, tag, value", [
    ("CS", 0x00080008, "ORIGINAL\\PRIMARY\\AXIAL\\"),
    ("CS", 0x00080060, "  "),
    ("AE", 0x00020016, " AE TITLE \\ B"),
    ("UI", 0x00081150, " 1.2.3 \x00"),
    ("UI", 0x00081150, "1.2\\\\1.3"),
    ("DA", 0x00080020, "20240101\\"),
    ("TM", 0x00080030, "101010.5 "),
    ("AS", 0x00101010, "030Y"),
    ("UR", 0x00081190, "http://example.invalid/a b  "),
    ("SH", 0x00080050, "A\\B \\ C\x00"),
    ("LO", 0x00100020, ""),
    ("ST", 0x00081030, "back\\slash"),
    ("UC", 0x00189424, "one\\two"),
])
def test_text_values(vr: str, tag: int, value: str) -> None:
    assert_like_pydicom(body(el(tag, vr, padded(value) if value else b"")))


@pytest.mark.parametrize("vr, tag, value", [
    ("US", 0x00280010, struct.pack("<3H", 1, 2, 65535)),
    ("US", 0x00181244, b"\x01"),  # odd length: pydicom raises
    ("SS", 0x00189219, struct.pack("<h", -5)),
    ("UL", 0x00081161, struct.pack("<2L", 7, 4294967295)),
    ("SL", 0x00186020, struct.pack("<l", -70000)),
    ("FL", 0x00189087, struct.pack("<2f", 0.1, float("nan"))),
    ("FD", 0x00189089, struct.pack("<3d", 1.5, float("-inf"), -0.0)),
    ("SV", 0x00720082, struct.pack("<q", -(2**40))),
    ("UV", 0x0008040C, struct.pack("<Q", 2**63)),
    ("AT", 0x00209165, struct.pack("<2H", 0x0020, 0x9057)),
    ("AT", 0x00209165, struct.pack("<4H", 0x0020, 0x9057, 0x0018, 0x9301)),
    ("AT", 0x00209165, struct.pack("<3H", 0x0020, 0x9057, 0x0018)),  # 6 bytes: pydicom raises
    ("AT", 0x00209165, b"\x01\x00"),
    ("US", 0x00281101, struct.pack("<3H", 0, 0, 16)),  # LUT descriptor: pydicom's own path
    ("SS", 0x00281101, struct.pack("<3h", -1, 0, 16)),
])
def test_binary_numbers(vr: str, tag: int, value: bytes) -> None:
    assert_like_pydicom(body(el32(tag, vr, value) if vr in ("SV", "UV") else el(tag, vr, value)))


def item(*elements: bytes) -> bytes:
    content = b"".join(elements)
    return struct.pack("<HHL", 0xFFFE, 0xE000, len(content)) + content


@pytest.mark.parametrize("size", [0, 1, 767, 768, 769, 4000])
def test_binary_values_inline_or_bulk_at_any_depth(size: int) -> None:
    blob = bytes(range(256)) * (size // 256) + bytes(size % 256)
    blob += b"\0" if size % 2 else b""
    inner = el(0x00081199, "SQ", item(el(0x00420011, "OB", blob), el(0x00660023, "OF", blob)))
    assert_like_pydicom(body(
        el(0x00091010, "LO", padded("ACME CREATOR")),
        el(0x00091011, "OB", blob), el(0x00091012, "UN", blob),
        el(0x00400275, "SQ", item(inner, el(0x00081150, "UI", text("1.2.3"))) + item()),
        el(0x00420011, "OB", blob), el(0x00540081, "UN", blob),
    ))


def test_empty_values_of_every_vr() -> None:
    elements = [(0x00080030, "TM"), (0x00080050, "SH"), (0x00080060, "CS"),
                (0x00080090, "PN"), (0x00081030, "LO"), (0x00101010, "AS"),
                (0x00101030, "DS"), (0x00200013, "IS"), (0x00209165, "AT"),
                (0x00280010, "US"), (0x00400275, "SQ"), (0x00420011, "OB"),
                (0x00189087, "FD"), (0x00081190, "UR"), (0x00321066, "UT")]
    assert_like_pydicom(body(*(el(tag, vr, b"") for tag, vr in elements)))


def test_private_tags_with_and_without_creators() -> None:
    assert_like_pydicom(body(
        el(0x00190010, "LO", padded("GEMS_ACQU_01")),
        el(0x00191002, "UN", struct.pack("<l", 17)),  # known private VR (SL) written as UN
        el(0x00191003, "UN", b"\x01\x02"),
        el(0x00291010, "UN", b"no creator"),
        el(0x00091001, "UN", padded("odd group, no creator")),
        el(0x00100010, "UN", padded("Known^Tag")),  # UN of a dictionary tag: pydicom's path
    ))


def dataset_of_every_vr() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.StudyDate = "20240102"
    ds.Modality = "CT"
    ds.InstitutionName = "Hôpital"
    ds.PatientName = "Doe^Jöhn=ドウ"
    ds.PatientAge = "042Y"
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = "1.2.3.4"
    ds.InstanceNumber = 7
    ds.ImagePositionPatient = [-1.5, 2.25, 300.0]
    ds.Rows, ds.Columns = 2, 2
    ds.PixelSpacing = [0.5, 0.5]
    ds.RescaleSlope = "1.0"
    ds.SmallestImagePixelValue = 0
    ds.add_new(0x00189087, "FD", 1.25)
    ds.add_new(0x00189219, "SS", [-3, 4])
    ds.add_new(0x00209165, "AT", [0x00209057, 0x00189301])
    ds.add_new(0x00186020, "SL", -9)
    ds.add_new(0x00081161, "UL", [1, 2])
    ds.add_new(0x00189424, "LT", "long\\text")
    ds.add_new(0x00420011, "OB", bytes(900))
    ds.add_new(0x00660023, "OF", bytes(8))
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "SH", "private")
    block.add_new(0x02, "OB", b"\x01\x02")
    referenced = Dataset()
    referenced.ReferencedSOPInstanceUID = "1.2.3.4.6"
    referenced.add_new(0x00420011, "OB", bytes(1000))
    nested = Dataset()
    nested.CodeMeaning = "Ünïcode"
    referenced.ConceptNameCodeSequence = [nested]
    ds.ReferencedImageSequence = [referenced, Dataset()]
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                    ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_every_vr_in_every_transfer_syntax(syntax: str) -> None:
    ds = dataset_of_every_vr()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()

    assert_like_pydicom(data)
    _header, read_ds = read(data)
    assert read_ds.original_encoding == (syntax.is_implicit_VR, syntax.is_little_endian)


def test_a_non_default_pydicom_configuration_uses_pydicom(monkeypatch) -> None:
    """pydicom set to raise on invalid values drops them (its fallback); so does
    ``dataset_json`` then, since the encoder is not used."""
    data = body(el(0x00281053, "DS", padded("1.23456789012345678")),
                el(0x00081030, "LO", padded("kept")))
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode",
                        pydicom.config.RAISE)

    header, ds = read(data)
    found = dataset_json(ds, header)

    assert not json_encoder.usable()
    assert "00281053" not in found and found["00081030"]["Value"] == ["kept"]
    assert outcome(dataset_json, data) == outcome(dataset_json_reference, data)


@pytest.mark.parametrize("names", ["A^B\\", "A^B\\\\C", "\\=X"])
def test_a_name_list_with_an_empty_name_is_left_out(names: str) -> None:
    """pydicom's ``to_json_dict`` raises IndexError on it (a trailing backslash is enough):
    the element is dropped as for any value pydicom cannot encode, the rest is kept."""
    data = body(el(0x00081070, "PN", padded(names)), el(0x00081030, "LO", padded("kept")))
    header, ds = read(data)

    found = dataset_json(ds, header)

    assert "00081070" not in found
    assert found["00081030"] == {"vr": "LO", "Value": ["kept"]}
    assert found["00100010"]["Value"] == [{"Alphabetic": "SECRET^PATIENT"}]
    assert outcome(dataset_json, data) == outcome(dataset_json_reference, data)
