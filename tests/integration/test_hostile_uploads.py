"""The hostile corpus through the real path: every file ends as a classified result, in
bounded memory, with nothing else written."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from localcloud import procs
from tests import hostile
from tests.ingest_helpers import file_results, instance_objects, upload_bytes, wait_final
from tests.localcloud_fixture import wait_for

pytestmark = pytest.mark.localcloud

CT = Path(get_testdata_file("CT_small.dcm")).read_bytes()

# (generator, expected upload status, a reason every refused result must be among)
ARCHIVES = [
    (hostile.overlap_bomb, "failed", {"overlapping_entries"}),
    (hostile.local_extra_overlap, "failed", {"overlapping_entries"}),
    (hostile.ratio_bomb, "failed", {"compression_ratio"}),
    (hostile.many_empty_members, "failed", {"too_many_members"}),
    (hostile.lying_size, "failed", {"member_too_large"}),
    (hostile.nested_zip, "failed", {"nested_archive"}),
    (hostile.zip_slip, "failed", {"not_dicom"}),
    (hostile.symlink, "failed", {"symlink", "not_dicom"}),
    (hostile.traditional_encrypted, "failed", {"encrypted"}),
    (hostile.aes_encrypted, "failed", {"encrypted"}),
    (hostile.odd_names, "failed", {"not_dicom"}),
    (hostile.unsupported_compression, "failed", {"unsupported_compression"}),
]


def test_empty_file_is_refused_before_any_byte_is_sent(cloud, tmp_path):
    from tests.ingest_helpers import start_upload

    user = cloud.create_user()
    size = len(hostile.empty_file(tmp_path).read_bytes())
    resp = start_upload(cloud, user, "empty.zip", size, "application/zip")
    assert resp.status_code == 400 and resp.json()["error"] == "bad_size"


def _peak_rss_kib(cloud, function: str) -> int:
    """Highest VmHWM among the function's processes (its process group)."""
    child = next(c for c in cloud.children if c.name.endswith(f".{function}"))
    return procs.group_peak_rss_bytes(child.pid) // 1024


@pytest.mark.parametrize("make,status,reasons", ARCHIVES, ids=[a[0].__name__ for a in ARCHIVES])
def test_hostile_archive_is_classified(cloud, tmp_path, make, status, reasons):
    # Arrange
    user = cloud.create_user()
    data = make(tmp_path).read_bytes()
    # Act
    upload_id = upload_bytes(cloud, user, data, "hostile.zip", "application/zip")
    record = wait_final(cloud, upload_id, timeout=120)
    # Assert
    results = file_results(cloud, upload_id)
    assert record["status"] == status
    assert results, "every upload gets at least one result"
    refused = {r["reason"] for r in results if r["status"] == "rejected"}
    assert refused and refused <= reasons, refused
    assert all(r.get("message") for r in results if r["status"] == "rejected")
    assert instance_objects(cloud, user.uid) == []
    assert _peak_rss_kib(cloud, "on-upload-finalized") < 400 * 1024


def _dicom_variant(mutate) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(CT))
    mutate(ds)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _deep_sequence(depth: int) -> bytes:
    # Built as raw bytes: pydicom's own writer is not meant for hostile nesting.
    from tests.dicom_builders import identity, image, nested_undefined, part10

    return part10(identity() + nested_undefined(depth) + image())


def _huge_length() -> bytes:
    data = bytearray(CT)
    # (0010,0010) PatientName, explicit VR little endian: 'PN' + 2-byte length
    tag = b"\x10\x00\x10\x00"
    at = data.index(tag, 132)
    # Rewrite as an element whose 4-byte length claims nearly 4 GiB (UN VR allows it).
    data[at + 4:at + 8] = b"UN\x00\x00"
    data[at + 8:at + 8] = b"\xf0\xff\xff\xff"
    return bytes(data)


def _no_delimiter() -> bytes:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(io.BytesIO(CT))
    ds.ContentSequence = Sequence([Dataset()])
    ds.ContentSequence[0].PatientName = "x"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=False, little_endian=True)
    data = buf.getvalue()
    # Make the sequence undefined length and cut every delimiter away.
    return data.replace(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"").replace(
        b"\xfe\xff\x0d\xe0\x00\x00\x00\x00", b"")[:-1000]


def _deflate_bomb() -> bytes:
    import zlib

    ds = pydicom.dcmread(io.BytesIO(CT), stop_before_pixels=True)
    meta = io.BytesIO()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    pydicom.filewriter.write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    body = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    payload = body.compress(b"\x00" * (400 * 1024**2)) + body.flush()
    return b"\x00" * 128 + b"DICM" + meta.getvalue() + payload


DICOMS = [
    ("truncated", lambda: CT[: len(CT) // 2], {"truncated_pixel_data", "corrupt"}),
    ("huge_length", _huge_length, {"corrupt", "too_large"}),
    ("no_delimiter", _no_delimiter, {"corrupt", "truncated_pixel_data", "too_large"}),
    ("deep_sequences", lambda: _deep_sequence(300), {"corrupt", "too_large"}),
    ("deflate_bomb", _deflate_bomb, {"deflate_bomb", "too_large"}),
    ("polyglot", lambda: b"PK\x03\x04" + CT[4:], {"polyglot"}),
    ("no_uids", lambda: _dicom_variant(lambda ds: delattr(ds, "SeriesInstanceUID")),
     {"missing_uid"}),
]


@pytest.mark.parametrize("name,make,reasons", DICOMS, ids=[d[0] for d in DICOMS])
def test_hostile_dicom_is_classified(cloud, name, make, reasons):
    # Arrange
    user = cloud.create_user()
    data = make()
    # Act
    upload_id = upload_bytes(cloud, user, data, f"{name}.dcm", "application/dicom")
    record = wait_final(cloud, upload_id, timeout=120)
    # Assert
    [result] = file_results(cloud, upload_id)
    assert record["status"] == "failed"
    assert result["status"] == "rejected" and result["reason"] in reasons, result
    assert instance_objects(cloud, user.uid) == []
    assert _peak_rss_kib(cloud, "on-upload-finalized") < 400 * 1024


def test_hostile_members_beside_good_ones_give_a_partial_upload(cloud, tmp_path):
    user = cloud.create_user()
    path = hostile.valid_zip(tmp_path, {"good.dcm": CT, "bad.dcm": CT[: len(CT) // 2],
                                        "DICOMDIR": b"dir", "notes.txt": b"hello"})
    upload_id = upload_bytes(cloud, user, path.read_bytes(), "mixed.zip", "application/zip")
    record = wait_final(cloud, upload_id)
    by_name = {r["name"]: r for r in file_results(cloud, upload_id)}
    assert record["status"] == "partial"
    assert by_name["good.dcm"]["status"] == "stored"
    assert by_name["bad.dcm"]["status"] == "rejected"
    assert by_name["DICOMDIR"]["status"] == "skipped"
    assert by_name["notes.txt"]["reason"] == "not_dicom"
    wait_for(lambda: len(instance_objects(cloud, user.uid)) == 1, what="one stored object")
