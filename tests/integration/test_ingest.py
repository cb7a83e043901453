"""Ingest through the real path: create_upload, the resumable session, the router,
on_upload_finalized, on_instance_finalized and settle_series, on real DICOM files."""

from __future__ import annotations

import hashlib
import uuid

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.ingest_helpers import (
    file_results,
    instance_docs,
    instance_objects,
    start_upload,
    upload_bytes,
    wait_final,
    wait_settled,
)
from tests.localcloud_fixture import wait_for

pytestmark = pytest.mark.localcloud


def _ct_small() -> bytes:
    return open(get_testdata_file("CT_small.dcm"), "rb").read()


def test_single_dicom_is_stored_indexed_and_previewed(cloud):
    # Arrange
    user = cloud.create_user()
    data = _ct_small()
    reference = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    # Act
    upload_id = upload_bytes(cloud, user, data, "ct.dcm", "application/dicom")
    record = wait_final(cloud, upload_id)
    wait_settled(cloud, user.uid, 1)
    # Assert: the record and the per-file result
    assert record["status"] == "complete"
    assert record["counts"]["stored"] == 1 and record["counts"]["total"] == 1
    [result] = file_results(cloud, upload_id)
    assert result["status"] == "stored" and result["name"] == "ct.dcm"
    # The canonical object: preamble zeroed, checksum recorded, no UID in its name
    [blob] = instance_objects(cloud, user.uid)
    stored = blob.download_as_bytes()
    assert stored[:128] == b"\x00" * 128 and stored[128:] == data[128:]
    assert blob.metadata["sha256"] == hashlib.sha256(stored).hexdigest() == result["sha256"]
    assert reference.SOPInstanceUID not in blob.name and reference.StudyInstanceUID not in blob.name
    # The documents
    [instance] = instance_docs(cloud, user.uid)
    assert instance["SOPInstanceUID"] == reference.SOPInstanceUID
    assert instance["Rows"] == reference.Rows and instance["Columns"] == reference.Columns
    study = cloud.clients().firestore.collection("studies").document(result["study_key"]).get().to_dict()
    assert study["owner"] == user.uid
    assert study["PatientName"] == str(reference.PatientName)
    assert study["StudyInstanceUID"] == reference.StudyInstanceUID
    study = wait_for(lambda: (s := cloud.clients().firestore.collection("studies").document(
        result["study_key"]).get().to_dict()).get("instance_count") == 1
        and (s.get("preview") or {}).get("status") == "ready" and s, what="study counts and preview")
    assert study["series_count"] == 1 and study["modalities"] == ["CT"]
    assert study["total_bytes"] == len(stored)
    assert study["preview"]["status"] == "ready"
    png = cloud.clients().storage.bucket(cloud.buckets["derived"]).blob(
        study["preview"]["object"]).download_as_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_create_upload_refuses_bad_requests_with_reasons(cloud):
    user = cloud.create_user()
    assert start_upload(cloud, type(user)("x", "x", "x", "bad", "x"), "a.dcm", 10,
                        confirm_adult=False).status_code == 401
    resp = start_upload(cloud, user, "a.exe", 10, "application/x-msdownload")
    assert resp.status_code == 400 and resp.json()["error"] == "bad_content_type"
    resp = start_upload(cloud, user, "big.zip", 3 * 1024**3, "application/zip")
    assert resp.status_code == 400 and resp.json()["error"] == "too_large"
    resp = start_upload(cloud, user, "zero.dcm", 0)
    assert resp.status_code == 400 and resp.json()["error"] == "bad_size"


def test_upload_needs_the_18_plus_profile_first(cloud):
    # Arrange: an account that never confirmed it is 18 or older
    user = cloud.create_user()
    # Act
    refused = start_upload(cloud, user, "ct.dcm", 2048, "application/dicom", confirm_adult=False)
    allowed = start_upload(cloud, user, "ct.dcm", 2048, "application/dicom", confirm_adult=True)
    # Assert: refused with the reason, nothing recorded; fine once confirmed
    assert refused.status_code == 403 and refused.json()["error"] == "profile_required"
    assert "18" in refused.json()["message"]
    from google.cloud.firestore_v1.base_query import FieldFilter

    uploads = cloud.clients().firestore.collection("uploads").where(
        filter=FieldFilter("owner", "==", user.uid)).get()
    assert allowed.status_code == 200 and len(uploads) == 1


def test_object_without_record_is_deleted(cloud):
    # Arrange: a write that did not come through create_upload
    bucket = cloud.clients().storage.bucket(cloud.buckets["uploads"])
    name = f"someone/{uuid.uuid4().hex}"
    # Act
    bucket.blob(name).upload_from_string(_ct_small())
    # Assert
    wait_for(lambda: bucket.get_blob(name) is None, what="the stray object to be deleted")
    assert instance_objects(cloud, "someone") == []


def test_size_differing_from_record_fails_and_deletes(cloud):
    # Arrange: announce one size, send another through a session opened for the record
    user = cloud.create_user()
    resp = start_upload(cloud, user, "ct.dcm", 100, "application/dicom")
    body = resp.json()
    bucket = cloud.clients().storage.bucket(body["bucket"])
    # Act: write the object directly (an emulator cannot enforce a session's size)
    bucket.blob(body["object"]).upload_from_string(_ct_small())
    record = wait_final(cloud, body["upload_id"])
    # Assert
    assert record["status"] == "failed" and record["reason"] == "size_mismatch"
    wait_for(lambda: bucket.get_blob(body["object"]) is None, what="object deletion")


def test_zip_of_real_study_with_dicomdir(cloud):
    # Arrange: pydicom's dicomdirtests set as a clinic CD export
    from localcloud.mainjob import build_demo_zip

    user = cloud.create_user()
    path = build_demo_zip(cloud.log_dir.parent / f"demo-{uuid.uuid4().hex}.zip")
    data = path.read_bytes()
    # Act
    upload_id = upload_bytes(cloud, user, data, "cd-export.zip", "application/zip")
    record = wait_final(cloud, upload_id, timeout=180)
    results = file_results(cloud, upload_id)
    # Assert
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    assert record["status"] == "complete"
    assert record["counts"]["total"] == len(results) == 25
    assert by_status == {"stored": 24, "skipped": 1}
    assert [r["reason"] for r in results if r["status"] == "skipped"] == ["dicomdir"]
    wait_settled(cloud, user.uid, 24, timeout=180)
    assert len(instance_objects(cloud, user.uid)) == 24
    studies = [s.to_dict() for s in cloud.clients().firestore.collection("studies").stream()
               if s.to_dict()["owner"] == user.uid]
    assert sum(s["instance_count"] for s in studies) == 24
    assert sorted({m for s in studies for m in s["modalities"]}) == ["CR", "CT", "MR"]
