"""Writers of user data against an erasure or a study deletion that happens between their
check and their write (issue 14, items 2 and 3).

Each test drives one writer itself (ingest, the indexer, settle) and makes the erasure or
deletion happen at the worst moment through the clock the writer is given: the writer
already checked the marker, the erasure then runs to completion (its final pass included),
and the writer goes on. Afterwards nothing of the user (or of the deleted study) may be
left anywhere, as the erasure's receipt or the deletion's record promises.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pydicom
import pytest
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs import ids
from pacs.events import StorageObjectEvent
from pacs.indexing import catalog, settle
from pacs.ingest import pipeline
from pacs.privacy import erasure
from pacs.studies import deletion
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.localcloud_fixture import LocalCloud, wait_for
from tests.privacy_helpers import all_auth_users, all_documents, mentions
from tests.retention_helpers import run_scheduled

pytestmark = pytest.mark.localcloud

OWNED_GROUPS = ("studies", "series", "instances", "files", "uploads")


def dicom_bytes(study_uid: str, series_uid: str) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def own_buckets(cloud: LocalCloud, *roles: str) -> Any:
    """The project's clients with the given buckets replaced by new ones that no trigger
    watches, so the test decides when each writer runs."""
    clients = cloud.clients()
    fields = {}
    for role in roles:
        bucket = clients.storage.create_bucket(f"race-{role}-{uuid.uuid4().hex[:10]}")
        fields[f"{role}_bucket"] = bucket.name
    return dataclasses.replace(clients, settings=dataclasses.replace(clients.settings, **fields))


def stage_upload(clients: Any, uid: str, data: bytes, filename: str) -> pipeline.Batch:
    """An upload object and its ``processing`` record, as create_upload and the finalize
    event leave them."""
    upload_id = uuid.uuid4().hex
    blob = clients.storage.bucket(clients.settings.uploads_bucket).blob(f"{uid}/{upload_id}")
    blob.upload_from_string(data, content_type="application/octet-stream")
    clients.firestore.collection("uploads").document(upload_id).set({
        "owner": uid, "status": "processing", "generation": str(blob.generation),
        "filename": filename, "size": len(data), "counts_toward_quota": True,
        "created_at": datetime.now(UTC)})
    return pipeline.Batch(uid, upload_id, str(blob.generation))


def at_call(n: int, action: Callable[[], Any]) -> Callable[[], datetime]:
    """A clock that runs ``action`` (once) when it is asked the time for the ``n``-th time."""
    calls = 0

    def now() -> datetime:
        nonlocal calls
        calls += 1
        if calls == n:
            action()
        return datetime.now(UTC)

    return now


def erase_completely(clients: Any, uid: str, receipts: list[dict[str, Any]]) -> Callable[[], Any]:
    return lambda: receipts.append(erasure.erase(clients, uid))


def erased_everywhere(cloud: LocalCloud, clients: Any, uid: str) -> list[str]:
    """The erasure test's inventory: every document of the project (any depth), every
    object of the buckets in use (names and bytes) and every Auth user that still names
    ``uid``."""
    found = [d.path for d in all_documents(cloud) if mentions([uid], d.text + d.path)]
    settings = clients.settings
    for bucket in {*cloud.buckets.values(), settings.uploads_bucket, settings.instances_bucket,
                   settings.derived_bucket}:
        found += [f"{bucket}/{b.name}" for b in clients.storage.list_blobs(bucket)
                  if mentions([uid], b.name) or mentions([uid], b.download_as_bytes())]
    found += [f"auth/{u.uid}" for u in all_auth_users(cloud) if u.uid == uid]
    return found


def leftovers(clients: Any, uid: str) -> list[str]:
    """Every document owned by ``uid`` in the collections writers fill, and every object
    under ``{uid}/`` in the three buckets."""
    fs, settings = clients.firestore, clients.settings
    found = [s.reference.path for group in OWNED_GROUPS for s in fs.collection_group(group).where(
        filter=FieldFilter("owner", "==", uid)).stream()]
    for bucket in (settings.uploads_bucket, settings.instances_bucket, settings.derived_bucket):
        # Derived objects sit under a kind folder (previews/{uid}/..., exports/{uid}/...).
        found += [f"{bucket}/{b.name}" for b in clients.storage.list_blobs(bucket)
                  if b.name.startswith(f"{uid}/") or f"/{uid}/" in b.name]
    return found


def ingested_file(clients: Any, uid: str, study_uid: str) -> pipeline.Batch:
    """One file of ``study_uid`` ingested (stored and its parents created, not indexed)."""
    batch = stage_upload(clients, uid, dicom_bytes(study_uid, generate_uid()), "a.dcm")
    assert pipeline.process(clients, batch) == "done"
    return batch


def finalize_event(clients: Any, uid: str) -> StorageObjectEvent:
    [blob] = list(clients.storage.list_blobs(clients.settings.instances_bucket,
                                             prefix=f"{uid}/"))
    return StorageObjectEvent("e1", "google.cloud.storage.object.v1.finalized",
                              clients.settings.instances_bucket, blob.name,
                              str(blob.generation), blob.size, "application/dicom", "", "")


def settle_payload(clients: Any, batch: pipeline.Batch) -> dict[str, Any]:
    """The ``series-settle`` message ingest sends for a one-file upload."""
    [result] = [s.to_dict() for s in clients.firestore.collection("uploads")
                .document(batch.upload_id).collection("files").stream()]
    return {"uid": batch.uid, "upload_id": batch.upload_id, "study_key": result["study_key"],
            "series_key": result["series_key"], "expected": 1}


# --- Erasure (item 2) --------------------------------------------------------------------------

def test_a_single_file_whose_owner_is_erased_while_it_spools_writes_nothing(cloud):
    # Arrange: the file was checked against the marker and spooled; the erasure then runs
    # from start to final pass before ingest writes anything.
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    batch = stage_upload(clients, user.uid, dicom_bytes(generate_uid(), generate_uid()),
                         "big.dcm")
    receipts: list[dict[str, Any]] = []
    # Act
    outcome = pipeline.process(clients, batch,
                               now=at_call(1, erase_completely(clients, user.uid, receipts)))
    # Assert: the receipt said completed, and it is true
    assert receipts and receipts[0]["status"] == "completed"
    assert outcome == "erased"
    assert leftovers(clients, user.uid) == []
    assert erased_everywhere(cloud, clients, user.uid) == []


def test_the_indexer_writes_nothing_for_an_owner_erased_after_its_check(cloud):
    # Arrange: an instance stored by ingest, whose finalize event nobody delivered yet
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    ingested_file(clients, user.uid, generate_uid())
    event = finalize_event(clients, user.uid)
    receipts: list[dict[str, Any]] = []
    # Act: the indexer read the object and its seal; the erasure completes; it writes
    outcome = catalog.index_instance(
        clients, event, now=at_call(1, erase_completely(clients, user.uid, receipts)))
    # Assert
    assert receipts and receipts[0]["status"] == "completed"
    assert outcome == "erased"
    assert leftovers(clients, user.uid) == []
    assert erased_everywhere(cloud, clients, user.uid) == []


def test_settle_removes_a_preview_it_wrote_after_its_owner_was_erased(cloud):
    # Arrange: an indexed series, ready to settle
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances", "derived")
    batch = ingested_file(clients, user.uid, generate_uid())
    event = finalize_event(clients, user.uid)
    assert catalog.index_instance(clients, event) == "indexed"
    payload = settle_payload(clients, batch)
    receipts: list[dict[str, Any]] = []
    # Act: settle asks the time for its counts, then once the preview object is written
    outcome = settle.settle_series(
        clients, payload, now=at_call(2, erase_completely(clients, user.uid, receipts)))
    # Assert
    assert receipts and receipts[0]["status"] == "completed"
    assert outcome == "settled"
    assert leftovers(clients, user.uid) == []
    assert erased_everywhere(cloud, clients, user.uid) == []


# --- Study deletion (item 3) ------------------------------------------------------------------

MEMBERS = 40


def archive(study_uid: str, series_uid: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(MEMBERS):
            zf.writestr(f"{i:04d}.dcm", dicom_bytes(study_uid, series_uid))
    return buf.getvalue()


def test_a_study_deleted_mid_upload_is_gone_once_the_scheduled_job_finishes_it(cloud):
    # Arrange: an archive of one study, processed by ingest in this test (its own uploads
    # bucket) while the real indexer indexes what it stores; the owner deletes the study
    # after 10 members were stored.
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads")
    study_uid = generate_uid()
    study_key = ids.study_key(clients.settings.hash_key, user.uid, study_uid)
    batch = stage_upload(clients, user.uid, archive(study_uid, generate_uid()), "ct.zip")
    answers: list[dict[str, Any]] = []

    def delete() -> None:
        answers.append(deletion.delete_study(cloud.clients(), user.uid, study_key))

    # Act: ingest goes on after the deletion answered
    assert pipeline.process(clients, batch, now=at_call(10, delete)) == "done"

    # Assert: the deletion was accepted, waiting for the upload, not failed
    assert [a["status"] for a in answers] == ["in_progress"]
    assert answers[0]["waiting_for"] == "upload" and answers[0]["failed"] == []
    upload = clients.firestore.collection("uploads").document(batch.upload_id).get().to_dict()
    assert upload["status"] in ("complete", "partial", "failed")
    # Nothing was indexed under the study after its deletion began: wait for the indexer to
    # handle every object ingest stored, then nothing may be left of the study's.
    prefix = f"{user.uid}/{study_key}/"
    wait_for(lambda: not list(cloud.clients().storage.list_blobs(
        clients.settings.instances_bucket, prefix=prefix)), timeout=120,
        what="the indexer to remove objects stored after the deletion began")
    # The scheduled job finishes the deletion without the owner sending it again.
    record_ref = clients.firestore.collection("deletions").document(
        deletion.deletion_id(clients.settings.hash_key, user.uid, study_key))
    record_ref.update({"last_attempt_at": datetime.now(UTC) - timedelta(hours=1)})
    run_scheduled(cloud, "resume_deletions")
    record = record_ref.get().to_dict()
    assert record["status"] == "completed", record
    fs = clients.firestore
    assert not catalog.study_ref(fs, study_key).get().exists
    assert not list(catalog.study_ref(fs, study_key).collections())
    assert not [s.id for s in fs.collection_group("files").where(
        filter=FieldFilter("owner", "==", user.uid)).where(
        filter=FieldFilter("study_key", "==", study_key)).stream()]
    previews = ids.preview_object(user.uid, study_key, "x").rpartition("/")[0] + "/"
    assert not list(clients.storage.list_blobs(clients.settings.derived_bucket, prefix=previews))
    upload = fs.collection("uploads").document(batch.upload_id).get().to_dict()
    assert upload["counts_toward_quota"] is False


def study_leftovers(clients: Any, uid: str, study_key: str) -> list[str]:
    """What still belongs to the study: documents under it, results pointing at it, its
    instance objects and previews."""
    fs, settings = clients.firestore, clients.settings
    study = catalog.study_ref(fs, study_key)
    found = [study.path] if study.get().exists else []
    found += [c.id for c in study.collections()]
    found += [s.reference.path for s in fs.collection_group("files").where(
        filter=FieldFilter("owner", "==", uid)).where(
        filter=FieldFilter("study_key", "==", study_key)).stream()]
    for bucket, name in ((settings.instances_bucket, ids.instance_object(uid, study_key, "x")),
                         (settings.derived_bucket, ids.preview_object(uid, study_key, "x"))):
        prefix = name.rpartition("/")[0] + "/"
        found += [f"{bucket}/{b.name}" for b in clients.storage.list_blobs(bucket, prefix=prefix)]
    return found


def finish_deletion(clients: Any, uid: str, study_key: str) -> dict[str, Any]:
    """What the scheduled resume_deletions job does for a waiting deletion (that job itself
    runs in the mid-upload test above), run here directly."""
    return deletion.delete_study(clients, uid, study_key)


def test_a_file_of_a_study_deleted_while_it_spools_stores_nothing(cloud):
    # Arrange: the study exists (an earlier upload); a second file of it is being ingested
    # when the owner deletes the study
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    study_uid = generate_uid()
    study_key = ids.study_key(clients.settings.hash_key, user.uid, study_uid)
    ingested_file(clients, user.uid, study_uid)
    second = stage_upload(clients, user.uid, dicom_bytes(study_uid, generate_uid()), "b.dcm")
    answers: list[dict[str, Any]] = []
    # Act
    outcome = pipeline.process(clients, second, now=at_call(1, lambda: answers.append(
        deletion.delete_study(clients, user.uid, study_key))))
    # Assert: the deletion waited for this upload; the file was refused, not stored
    assert outcome == "done"
    assert answers[0]["status"] == "in_progress" and answers[0]["waiting_for"] == "upload"
    [result] = [s.to_dict() for s in clients.firestore.collection("uploads")
                .document(second.upload_id).collection("files").stream()]
    assert result["status"] == "rejected" and result["reason"] == "study_deleted"
    assert finish_deletion(clients, user.uid, study_key)["status"] == "completed"
    assert study_leftovers(clients, user.uid, study_key) == []


def test_the_indexer_writes_nothing_under_a_study_deleted_after_its_check(cloud):
    # Arrange: an instance stored by ingest, not yet indexed
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    study_uid = generate_uid()
    study_key = ids.study_key(clients.settings.hash_key, user.uid, study_uid)
    ingested_file(clients, user.uid, study_uid)
    event = finalize_event(clients, user.uid)
    answers: list[dict[str, Any]] = []
    # Act: the indexer read the object; the whole deletion runs; the indexer writes
    outcome = catalog.index_instance(clients, event, now=at_call(1, lambda: answers.append(
        deletion.delete_study(clients, user.uid, study_key))))
    # Assert
    assert answers[0]["status"] == "completed"
    assert outcome == "study_deleted"
    assert study_leftovers(clients, user.uid, study_key) == []


def test_settle_removes_a_preview_it_wrote_after_its_study_was_deleted(cloud):
    # Arrange: an indexed series, ready to settle
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances", "derived")
    study_uid = generate_uid()
    study_key = ids.study_key(clients.settings.hash_key, user.uid, study_uid)
    batch = ingested_file(clients, user.uid, study_uid)
    assert catalog.index_instance(clients, finalize_event(clients, user.uid)) == "indexed"
    payload = settle_payload(clients, batch)
    answers: list[dict[str, Any]] = []
    # Act: the deletion runs after the preview object is written, before it is recorded
    outcome = settle.settle_series(clients, payload, now=at_call(2, lambda: answers.append(
        deletion.delete_study(clients, user.uid, study_key))))
    # Assert
    assert answers[0]["status"] == "completed"
    assert outcome == "settled"
    assert study_leftovers(clients, user.uid, study_key) == []
