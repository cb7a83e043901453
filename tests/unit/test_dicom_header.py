"""Header reading of untrusted DICOM files (``pacs.dicom.header``): the whole pydicom
corpus read like plain pydicom reads it or rejected with the right code, and hand-built
files that are not DICOM, cut short in the header, too large, of bad UIDs or with an
executable preamble.

Hostile structure (nesting, lying lengths, element floods, short pixel data):
``test_dicom_structure.py``; deflated files: ``test_dicom_deflate.py``; the builders:
``tests/dicom_builders.py``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pydicom
import pytest
from pacs.dicom.fields import FIELD_NAMES, field_values_from_pydicom
from pacs.dicom.header import HeaderRejected, read_header, zero_preamble
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels.utils import get_expected_length

from tests.dicom_builders import (
    DEFLATED,
    EXPLICIT_LE,
    LIMITS,
    el,
    identity,
    image,
    part10,
    read_bytes,
    read_path,
    rejection,
    small_valid,
    text,
)
from tests.dicom_corpus import corpus, corpus_file

CODES = {"not_dicom", "missing_uid", "invalid_uid", "corrupt", "truncated_pixel_data",
         "too_large", "deflate_bomb"}
UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

CORPUS = corpus()


# --------------------------------------------------------------------------- reference

class Reference:
    """What plain pydicom (no force, full read) says about one corpus file."""

    def __init__(self, path: Path) -> None:
        self.ds: Dataset | None = None
        self.fields: dict | None = None
        self.expected_code: str | None = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
                truncated_value = self._truncated_value(ds)  # before conversion
                list(ds.iterall())  # every sequence must convert too
            except Exception:  # noqa: BLE001 - any failure means "pydicom cannot read it"
                return
            meta = getattr(ds, "file_meta", None)
            if not meta or not meta.get("TransferSyntaxUID"):
                return
            if not all(ds.get(name) for name in UIDS):
                return
            self.ds = ds
            self.fields = field_values_from_pydicom(ds)
            self.expected_code = truncated_value or self._short_pixels(ds)

    @staticmethod
    def _truncated_value(ds: Dataset) -> str | None:
        """A raw value shorter than its declared length: the file ends inside it."""
        for elem in ds.elements():
            if (isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF
                    and isinstance(elem.value, bytes) and len(elem.value) < elem.length):
                return "truncated_pixel_data" if elem.tag >> 16 == 0x7FE0 else "corrupt"
        return None

    @staticmethod
    def _short_pixels(ds: Dataset) -> str | None:
        """Native pixel data shorter than the image pixel module implies."""
        ts = ds.file_meta.TransferSyntaxUID
        if "PixelData" in ds and not ts.is_compressed and ds.get("Rows"):
            try:
                expected = int(get_expected_length(ds))
            except (TypeError, ValueError):  # e.g. NumberOfFrames "1A" in badVR.dcm
                expected = 0
            if len(ds.PixelData) < expected:
                return "truncated_pixel_data"
        return None

    @property
    def readable(self) -> bool:
        return self.fields is not None


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_is_read_like_pydicom_or_rejected(name: str) -> None:
    # Arrange
    path = CORPUS[name]
    ref = Reference(path)

    # Act
    try:
        header, error = read_path(path), None
    except HeaderRejected as err:
        header, error = None, err

    # Assert
    if ref.readable and ref.expected_code is None:
        assert error is None, f"rejected with {error.code}" if error else ""
        assert header.fields == ref.fields
        assert header.study_instance_uid == str(ref.ds.StudyInstanceUID)
        assert header.series_instance_uid == str(ref.ds.SeriesInstanceUID)
        assert header.sop_instance_uid == str(ref.ds.SOPInstanceUID)
        assert header.transfer_syntax_uid == str(ref.ds.file_meta.TransferSyntaxUID)
        # Independent of the shared extraction function:
        name_elem = ref.ds.get("PatientName")
        assert header.fields["PatientName"] == (str(name_elem) if name_elem else None)
        assert header.fields["Rows"] == ref.ds.get("Rows")
        assert header.has_pixel_data == ("PixelData" in ref.ds)
        json.dumps(header.fields, allow_nan=False)
    elif ref.readable:
        assert error is not None and error.code == ref.expected_code
    else:
        assert error is not None and error.code in CODES


def test_corpus_is_complete() -> None:
    # Arrange
    names = {path.name for path in CORPUS.values()}

    # Act / Assert: pydicom's own files, its charset files and the pydicom-data package.
    assert {"CT_small.dcm", "image_dfl.dcm", "MR_truncated.dcm", "chrH31.dcm", "chrX1.dcm",
            "693_UNCI.dcm", "emri_small_RLE.dcm"} <= names
    assert len(CORPUS) > 250


@pytest.mark.parametrize(("name", "code"), [
    ("MR_truncated.dcm", "truncated_pixel_data"),
    ("emri_small_jpeg_2k_lossless_too_short.dcm", "truncated_pixel_data"),
    ("rtplan_truncated.dcm", "corrupt"),
    ("no_meta.dcm", "not_dicom"),
    ("ExplVR_LitEndNoMeta.dcm", "not_dicom"),
    ("meta_missing_tsyntax.dcm", "not_dicom"),
    ("zipMR.gz", "not_dicom"),
    ("crayons.icc", "not_dicom"),
    ("DICOMDIR", "missing_uid"),
    ("fall.dcm", "missing_uid"),
    ("OT-PAL-8-face.dcm", "not_dicom"),
])
def test_known_bad_corpus_files_get_their_code(name: str, code: str) -> None:
    # Arrange
    path = corpus_file(name)

    # Act
    with pytest.raises(HeaderRejected) as info:
        read_path(path)

    # Assert
    assert info.value.code == code
    assert info.value.http_status == 422


@pytest.mark.parametrize(("name", "expected"), [
    ("chrH31.dcm", {"PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう"}),
    ("chrX1.dcm", {"PatientName": "Wang^XiaoDong=王^小東"}),
    ("chrRuss.dcm", {"PatientName": "Люкceмбypг"}),
    ("chrArab.dcm", {"PatientName": "قباني^لنزار"}),
    ("CT_small.dcm", {
        "PatientName": "CompressedSamples^CT1", "Modality": "CT", "Rows": 128,
        "Columns": 128, "NumberOfFrames": 1, "TransferSyntaxUID": EXPLICIT_LE,
        "StudyInstanceUID": "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
        "is_image": True, "has_pixel_data": True,
    }),
    ("emri_small.dcm", {"NumberOfFrames": 10, "Rows": 64, "PatientName": None}),
    ("image_dfl.dcm", {"TransferSyntaxUID": DEFLATED, "is_image": True}),
    ("test-SR.dcm", {"Modality": "SR", "is_image": False, "has_pixel_data": False,
                     "NumberOfFrames": None}),
    ("waveform_ecg.dcm", {"is_image": False}),
    ("rtstruct.dcm", None),
])
def test_known_values(name: str, expected: dict | None) -> None:
    # Arrange
    path = corpus_file(name)
    if expected is None:  # rtstruct.dcm ships without a preamble: not Part 10
        with pytest.raises(HeaderRejected):
            read_path(path)
        return

    # Act
    header = read_path(path)

    # Assert
    assert {key: header.fields[key] for key in expected} == expected
    assert list(header.fields) == list(FIELD_NAMES)


def test_ct_fields_have_plain_types() -> None:
    # Arrange / Act
    fields = read_path(corpus_file("693_UNCI.dcm")).fields

    # Assert
    assert (fields["Rows"], fields["Columns"]) == (512, 512)
    assert isinstance(fields["ImagePositionPatient"], list) and len(
        fields["ImagePositionPatient"]) == 3
    assert all(type(v) is float for v in fields["ImageOrientationPatient"])
    assert type(fields["PatientName"]) is str and type(fields["InstanceNumber"]) is int
    assert json.loads(json.dumps(fields)) == fields


# --------------------------------------------------------------------------- hand-built files

def test_generated_baseline_file_is_accepted() -> None:
    # Arrange
    data = small_valid()

    # Act
    header = read_bytes(data)

    # Assert
    assert header.fields["PatientName"] == "SECRET^PATIENT"
    assert header.is_image and header.fields["NumberOfFrames"] == 1
    assert header.pixel_data_length == 16
    assert data[header.pixel_data_offset:header.pixel_data_offset + 16] == bytes(range(16))


@pytest.mark.parametrize("cut", [0, 1, 100, 131, 132, 140, 300, 401, 405, 415, -20, -3])
def test_file_truncated_in_its_header_is_rejected(cut: int) -> None:
    # Arrange
    data = part10(identity() + image())[:cut]

    # Act
    error = rejection(data)

    # Assert
    assert error.code in {"not_dicom", "corrupt", "missing_uid", "truncated_pixel_data"}


def test_empty_file_is_not_dicom() -> None:
    assert rejection(b"").code == "not_dicom"


def test_header_over_the_limit_is_too_large() -> None:
    # Arrange
    data = part10(identity() + el(0x0040A160, "UT", bytes(20_000)) + image())

    # Act / Assert
    assert rejection(data, max_header_bytes=8_000).code == "too_large"
    assert read_bytes(data, max_header_bytes=30_000).is_image


@pytest.mark.parametrize(("uid", "code"), [("", "missing_uid"), ("1." * 40, "invalid_uid"),
                                           ("1.2/../x", "invalid_uid")])
def test_bad_study_uid_is_rejected(uid: str, code: str) -> None:
    # Arrange
    body = identity().replace(el(0x0020000D, "UI", text("1.2.3")),
                              el(0x0020000D, "UI", text(uid)))
    data = part10(body + image())

    # Act / Assert
    assert rejection(data).code == code


def test_rejection_message_never_quotes_the_file() -> None:
    # Arrange: corrupt file whose values would show up in pydicom's exception texts
    data = part10(identity("SECRET^PATIENT") + el(0x0010A160, "UT", b"SECRET", length=9_999))

    # Act
    error = rejection(data)

    # Assert
    assert "SECRET" not in str(error) and "SECRET" not in repr(error.args)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_no_dicm_prefix_is_not_dicom() -> None:
    # Arrange
    data = small_valid()
    data = data[:128] + b"DICX" + data[132:]

    # Act / Assert
    assert rejection(data).code == "not_dicom"


def test_accepts_bytes() -> None:
    # Arrange
    data = small_valid()

    # Act
    header = read_header(data, len(data), **LIMITS)

    # Assert
    assert header.sop_instance_uid == "1.2.3.4.5"


# --------------------------------------------------------------------------- preamble

def test_zero_preamble_clears_an_executable_preamble() -> None:
    # Arrange
    data = small_valid()
    assert data[:4] == b"\x7fELF"

    # Act
    cleaned = zero_preamble(data[:4096])

    # Assert
    assert cleaned[:128] == bytes(128)
    assert cleaned[128:] == data[128:4096]


def test_zero_preamble_leaves_other_bytes_alone() -> None:
    # Arrange
    other = b"MZ" + bytes(200)

    # Act / Assert
    assert zero_preamble(other) == other
    assert zero_preamble(b"short") == b"short"
