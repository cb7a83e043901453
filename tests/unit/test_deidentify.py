"""De-identified copies (pacs.dicom.deidentify) over pydicom's and pydicom-data's test files:
every PS3.15 Annex E X/Z/D/U attribute present is handled, and no original identifier
(names, IDs, dates, UIDs, free text of those attributes, private attributes) is in any byte
of the copy."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pacs.dicom.deidentify import Deidentifier, annex_e_tags, left_out_reason
from pydicom.data import get_testdata_file

SECRET = b"share-secret-for-tests-0123456789abcdef"
# Times (TM) are not in it: shifted DTs keep their time of day, as the option allows.
TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC", "UI", "DA", "DT", "AE", "UR"}
STRICT_VRS = {"PN", "UI", "DA", "DT"}
MIN_LEN = 6  # shorter values ("M", "0", "CT") are not identifiers and occur by chance


def corpus() -> list[Path]:
    folders = {Path(get_testdata_file("CT_small.dcm")).parent,
               Path(get_testdata_file("emri_small_RLE.dcm")).parent}
    return sorted(p for folder in folders for p in folder.glob("*.dcm"))


def _read(path: Path) -> pydicom.Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # noqa: BLE001 - not Part 10 (no meta): never in the instances bucket
            return None
    return ds if ds.get("SOPInstanceUID") and ds.get("SOPClassUID") else None


def _values(element: pydicom.DataElement) -> list[str]:
    value = element.value
    values = value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    return [str(v).strip() for v in values if v not in (None, "")]


def _originals(ds: pydicom.Dataset, table: dict) -> tuple[set, set[str], set]:
    """(Annex E tags present with a value, identifying strings, private tags), all levels."""
    present: set = set()
    strings: set[str] = set()
    private: set = set()
    kept: set[str] = set()  # free text also held by attributes the profile keeps

    def visit(dataset: pydicom.Dataset, element: pydicom.DataElement) -> None:
        key = (element.tag.group, element.tag.element)
        if element.tag.is_private:
            private.add(key)  # must be gone (checked on the copy's elements)
            return
        if key in table and element.value not in (None, "", b""):
            present.add(key)
            if element.VR in TEXT_VRS:
                strings.update(v for v in _values(element) if len(v) >= MIN_LEN)
        elif element.VR in TEXT_VRS - STRICT_VRS:
            kept.update(_values(element))

    ds.walk(visit)
    # Names, UIDs and dates count wherever else they occur; descriptive text that a kept
    # attribute also holds (a procedure's code meaning equal to a step description) does not.
    strings = {s for s in strings if not any(s in k for k in kept) or _strict(ds, s)}
    return present, strings, private


def _strict(ds: pydicom.Dataset, text: str) -> bool:
    found: list = []
    ds.walk(lambda _d, e: found.append(e) if e.VR in STRICT_VRS and text in _values(e) else None)
    return bool(found)


def _private_tags(ds: pydicom.Dataset) -> list:
    found: list = []
    ds.walk(lambda _d, e: found.append(e.tag) if e.tag.is_private else None)
    return found


def _copy_of(ds: pydicom.Dataset) -> tuple[bytes, pydicom.Dataset]:
    Deidentifier(SECRET).deidentify_dataset(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    return data, pydicom.dcmread(io.BytesIO(data))


def _handled(original: pydicom.Dataset, copy: pydicom.Dataset, key: tuple[int, int]) -> bool:
    """Every occurrence of ``key`` in the copy is gone, empty or changed."""
    before: list = []
    after: list = []
    original.walk(lambda _d, e: before.append(_values(e)) if e.tag == key else None)
    copy.walk(lambda _d, e: after.append(_values(e)) if e.tag == key and e.VR != "SQ" else None)
    old = {v for values in before for v in values}
    return not any(v in old for values in after for v in values)


def test_every_annex_e_attribute_present_is_handled_and_no_identifier_is_left():
    table = annex_e_tags()
    seen_tags: set = set()
    files = 0
    for path in corpus():
        original = _read(path)
        if original is None:
            continue
        present, strings, private = _originals(original, table)
        working = _read(path)
        data, copy = _copy_of(working)
        files += 1
        seen_tags |= present
        for key in present:
            assert _handled(original, copy, key), (path.name, f"{key[0]:04X},{key[1]:04X}",
                                                   table[key])
        for text in strings:
            assert text.encode("latin-1", "replace") not in data, (path.name, text)
        assert not _private_tags(copy), (path.name, _private_tags(copy))
        assert copy.PatientIdentityRemoved == "YES"
        assert "Annex E" in copy.DeidentificationMethod
        assert [c.CodeValue for c in copy.DeidentificationMethodCodeSequence] == [
            "113100", "113107"]
        assert copy.file_meta.MediaStorageSOPInstanceUID == copy.SOPInstanceUID
    assert files >= 100
    # The corpus holds names, IDs, dates, UIDs and free text of many Annex E attributes.
    letters = {table[k] for k in seen_tags}
    assert {"X", "Z", "D", "U"} <= {part for letter in letters for part in letter.split("/")}
    assert len(seen_tags) >= 40, len(seen_tags)


def test_uids_and_dates_consistent_within_a_share_and_not_across():
    one = Deidentifier(SECRET)
    other = Deidentifier(SECRET[::-1])
    path = Path(get_testdata_file("CT_small.dcm"))
    a = one.copy(path.read_bytes())
    b = one.copy(path.read_bytes())
    c = other.copy(path.read_bytes())
    original = pydicom.dcmread(path)
    assert a.data == b.data and a.data != c.data
    assert a.study_uid == one.uid(original.StudyInstanceUID) != c.study_uid
    assert a.study_uid.startswith("2.25.") and len(a.study_uid) <= 64
    copy = pydicom.dcmread(io.BytesIO(a.data))
    assert copy.SeriesInstanceUID == a.series_uid == one.uid(original.SeriesInstanceUID)
    assert copy.FrameOfReferenceUID == one.uid(original.FrameOfReferenceUID)
    assert copy.SOPClassUID == original.SOPClassUID  # class UIDs are kept
    days = -one.shift.days
    assert 62 <= days <= 730
    assert copy.AcquisitionDate == one.shift_date(original.AcquisitionDate)
    assert copy.AcquisitionDate != original.AcquisitionDate
    assert copy.PatientName == "" and copy.PatientID in ("", "ANONYMIZED")
    assert copy.get("PatientBirthDate", "") in ("", "00010101")
    assert copy.PixelData == original.PixelData
    assert a.data[:128] == b"\0" * 128 and a.data[128:132] == b"DICM"


@pytest.mark.parametrize(("name", "reason"), [
    ("US1_J2KR.dcm", "ultrasound"),
    ("SC_rgb.dcm", "secondary_capture"),
])
def test_pixels_that_may_show_identity_are_left_out(name, reason):
    data = Path(get_testdata_file(name)).read_bytes()
    assert Deidentifier(SECRET).copy(data).left_out == reason


def test_burned_in_annotation_is_left_out():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert left_out_reason(ds) is None
    ds.BurnedInAnnotation = "YES"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    result = Deidentifier(SECRET).copy(out.getvalue())
    assert result.left_out == "burned_in_annotation" and result.data is None


def test_unreadable_and_short_secret():
    assert Deidentifier(SECRET).copy(b"\0" * 128 + b"DICM" + b"\xff" * 10).left_out == (
        "unreadable")
    with pytest.raises(ValueError):
        Deidentifier(b"short")
