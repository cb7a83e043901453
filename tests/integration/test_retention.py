"""Retention jobs on the local cloud.

Two ways in: each job's scheduled message published through the Pub/Sub emulator exactly as
Cloud Scheduler (and ``localcloud.scheduler``) publishes it, reaching ``run_retention_job``
through the router, with records seeded old enough relative to the real clock; and the
runner called directly with an injected clock, for what cannot be backdated (object creation
times) and for overlapping runs. Every test checks that exactly the expired things went and
nothing unexpired did, and reads the run record.

Storage is shared by the whole test session (``clean_firestore`` clears Firestore only), so
direct runs keep to their own objects with ``scope="{uid}/"``, and runs on the real clock
leave other tests' objects alone because those are younger than every grace period.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pydicom
import pytest
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs import ids
from pacs.retention import links, runner
from pacs.studies import deletion
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from localcloud import config, scheduler
from tests.localcloud_fixture import LocalCloud, wait_for

pytestmark = pytest.mark.localcloud

RUN_TIMEOUT = 240


# --- helpers --------------------------------------------------------------------------------

def _publisher():
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


def schedule_entry(job: str) -> dict[str, Any]:
    """The job's entry in the one schedule definition."""
    return next(j for j in config.schedule_definition()["jobs"] if j["data"]["job"] == job)


def runs_of_message(cloud: LocalCloud, message_id: str) -> list[dict[str, Any]]:
    query = cloud.clients().firestore.collection(runner.RUNS).where(
        filter=FieldFilter("message_id", "==", message_id))
    return [{"id": s.id, **(s.to_dict() or {})} for s in query.stream()]


def wait_run(cloud: LocalCloud, message_id: str) -> dict[str, Any]:
    """The finished run record of one message."""
    return wait_for(lambda: (r := runs_of_message(cloud, message_id))
                    and r[0]["status"] != runner.RUNNING and r[0],
                    timeout=RUN_TIMEOUT, interval=0.5, what=f"run record of {message_id}")


def publish(cloud: LocalCloud, job: str) -> str:
    """Publish a job's scheduled message, as Cloud Scheduler does; return its message id."""
    return scheduler.publish(_publisher(), cloud.project, schedule_entry(job))


def run_scheduled(cloud: LocalCloud, job: str, attempts: int = 6) -> dict[str, Any]:
    """Publish the job's message and wait for its run. A run skipped because an earlier run
    of the job (another test's) still held the lease is published again, as the next cron
    tick would be."""
    for _ in range(attempts):
        record = wait_run(cloud, publish(cloud, job))
        if record["status"] != runner.SKIPPED:
            return record
        time.sleep(3)
    raise AssertionError(f"{job} kept being skipped")


def now() -> datetime:
    return datetime.now(UTC)


def new_uid() -> str:
    return f"ret{uuid.uuid4().hex[:20]}"


def doc(cloud: LocalCloud, path: str) -> dict[str, Any] | None:
    snap = cloud.clients().firestore.document(path).get()
    return snap.to_dict() if snap.exists else None


def exists(cloud: LocalCloud, role: str, name: str) -> bool:
    return cloud.clients().storage.bucket(cloud.buckets[role]).get_blob(name) is not None


def put(cloud: LocalCloud, role: str, name: str, data: bytes = b"x",
        metadata: dict[str, str] | None = None) -> Any:
    blob = cloud.clients().storage.bucket(cloud.buckets[role]).blob(name)
    if metadata:
        blob.metadata = metadata
    blob.upload_from_string(data)
    return blob


def assert_run_record_shape(record: dict[str, Any], job: str) -> None:
    assert record["job"] == job
    assert set(record) >= {"job", "status", "started_at", "finished_at", "duration_seconds",
                           "counts", "errors", "more", "message_id"}
    assert record["finished_at"] >= record["started_at"]
    assert all(isinstance(v, int) for v in record["counts"].values())
    assert all(isinstance(e, str) and ":" in e or e == "lease_held" for e in record["errors"])


def seed_share(cloud: LocalCloud, uid: str, expires_at: datetime, revoked: bool = False) -> str:
    share_id = secrets.token_hex(10)
    cloud.clients().firestore.collection("shares").document(share_id).set({
        "owner": uid, "study_key": secrets.token_hex(16), "token_hash": secrets.token_hex(32),
        "created_at": expires_at - timedelta(days=1), "expires_at": expires_at,
        "max_views": None, "views": 3, "revoked": revoked,
        "revoked_at": expires_at - timedelta(hours=1) if revoked else None,
        "last_used_at": None})
    return share_id


def expiry_records(cloud: LocalCloud) -> list[dict[str, Any]]:
    query = cloud.clients().firestore.collection("access").where(
        filter=FieldFilter("kind", "==", "share_expired"))
    return [{"id": s.id, **(s.to_dict() or {})} for s in query.stream()]


def dicom_bytes(image: bool = True, **uids: str) -> tuple[bytes, pydicom.Dataset]:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    if not image:
        del ds.PixelData  # no preview: nothing derived is written while the test runs
    ds.SOPInstanceUID = uids.get("sop") or generate_uid()
    ds.SeriesInstanceUID = uids.get("series") or generate_uid()
    ds.StudyInstanceUID = uids.get("study") or generate_uid()
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue(), ds


def canonical_instance(cloud: LocalCloud, uid: str, image: bool = True
                       ) -> tuple[str, str, str, str]:
    """A real DICOM instance stored under its canonical name, as ingest stores it: the
    instances bucket's finalize event indexes it. Returns (object, study, series, instance)."""
    data, ds = dicom_bytes(image=image)
    key = cloud.settings().hash_key
    study = ids.study_key(key, uid, ds.StudyInstanceUID)
    series = ids.series_key(key, uid, ds.SeriesInstanceUID)
    instance = ids.instance_key(key, uid, ds.SOPInstanceUID)
    name = ids.instance_object(uid, study, instance)
    put(cloud, "instances", name, data, {"owner": uid, "upload_id": "seed", "member": "0",
                                         "sha256": "seed", "series_key": series})
    return name, study, series, instance


def instance_path(study: str, series: str, instance: str) -> str:
    return f"studies/{study}/series/{series}/instances/{instance}"


def wait_indexed(cloud: LocalCloud, path: str) -> dict[str, Any]:
    return wait_for(lambda: doc(cloud, path), timeout=120, interval=0.3, what="instance indexed")


# --- expire_links ---------------------------------------------------------------------------

def test_expire_links_deletes_expired_shares_and_keeps_an_access_record(clean_firestore):
    # Arrange
    cloud = clean_firestore
    uid = new_uid()
    t = now()
    expired = {seed_share(cloud, uid, t - timedelta(hours=1)),
               seed_share(cloud, uid, t - timedelta(days=30), revoked=True)}
    active = {seed_share(cloud, uid, t + timedelta(hours=1)),
              seed_share(cloud, uid, t + timedelta(days=2), revoked=True)}
    # Act
    record = run_scheduled(cloud, "expire_links")
    # Assert: exactly the expired shares went
    assert_run_record_shape(record, "expire_links")
    assert record["status"] == runner.SUCCEEDED and record["errors"] == []
    assert record["counts"]["shares_expired"] == 2
    for share_id in expired:
        assert doc(cloud, f"shares/{share_id}") is None
    for share_id in active:
        assert doc(cloud, f"shares/{share_id}") is not None
    # ... each leaving one access record, of the access log's shape, with no client data
    records = expiry_records(cloud)
    assert {r["share_id"] for r in records} == expired
    for r in records:
        assert r["owner"] == uid and r["actor_type"] == "system"
        assert r["ip"] is None and r["user_agent"] is None
        assert r["views"] == 3 and r["at"] < t


def test_expire_links_overlapping_runs_expire_each_share_once(clean_firestore):
    # Arrange
    cloud = clean_firestore
    uid = new_uid()
    t = now()
    expired = {seed_share(cloud, uid, t - timedelta(minutes=i + 1)) for i in range(40)}
    active = {seed_share(cloud, uid, t + timedelta(hours=1)) for _ in range(3)}
    publisher = _publisher()
    # Act: two scheduled messages at once (Pub/Sub delivers both concurrently) ...
    futures = [publisher.publish(publisher.topic_path(cloud.project, "retention-jobs"),
                                 scheduler.message_body(schedule_entry("expire_links")))
               for _ in range(2)]
    records = [wait_run(cloud, f.result(timeout=30)) for f in futures]
    # Assert: one did the work (the other was skipped, or found nothing left)
    assert sum(r["counts"].get("shares_expired", 0) for r in records) == 40
    assert all(r["status"] in (runner.SUCCEEDED, runner.SKIPPED) for r in records)
    assert {r["share_id"] for r in expiry_records(cloud)} == expired
    assert len(expiry_records(cloud)) == 40
    assert all(doc(cloud, f"shares/{s}") is not None for s in active)


def test_expire_links_steps_are_safe_without_the_lease(clean_firestore):
    # Arrange: runs that really overlap (no lease), small pages
    cloud = clean_firestore
    uid = new_uid()
    t = now()
    expired = {seed_share(cloud, uid, t - timedelta(minutes=i + 1)) for i in range(30)}
    active = {seed_share(cloud, uid, t + timedelta(minutes=5)) for _ in range(2)}
    results: list[dict[str, Any]] = []

    def one():
        results.append(runner.run(cloud.clients(), "expire_links", now=lambda: t, page_size=4,
                                  lease=False))

    # Act
    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RUN_TIMEOUT)
    # Assert: every expired share went, each with exactly one record; no errors
    assert len(results) == 3 and all(r["errors"] == [] for r in results)
    records = expiry_records(cloud)
    assert sorted(r["share_id"] for r in records) == sorted(expired)
    assert {r["id"] for r in records} == {links.expiry_record_id(cloud.settings().hash_key, s)
                                          for s in expired}
    assert all(doc(cloud, f"shares/{s}") is None for s in expired)
    assert all(doc(cloud, f"shares/{s}") is not None for s in active)


# --- purge_logs -----------------------------------------------------------------------------

def test_purge_logs_deletes_access_records_past_retention_and_old_run_records(clean_firestore):
    # Arrange
    cloud = clean_firestore
    fs = cloud.clients().firestore
    days = cloud.settings().access_log_retention_days
    t = now()

    def access(age: timedelta) -> str:
        _, ref = fs.collection("access").add({
            "owner": "u1", "study_key": "s" * 32, "kind": "manifest", "actor": "u1",
            "actor_type": "owner", "at": t - age, "ip": "203.0.113.9", "user_agent": "UA"})
        return ref.id

    old = {access(timedelta(days=days, hours=1)), access(timedelta(days=400))}
    kept = {access(timedelta(days=days - 1)), access(timedelta(seconds=5))}
    old_run = fs.collection(runner.RUNS).document()
    old_run.set({"job": "expire_links", "status": "succeeded",
                 "started_at": t - timedelta(days=cloud.settings().run_record_retention_days + 1)})
    recent_run = fs.collection(runner.RUNS).document()
    recent_run.set({"job": "expire_links", "status": "succeeded", "started_at": t - timedelta(days=1)})
    receipts = fs.collection("erasures")
    receipts.document("a" * 32).set({"status": "completed", "expire_at": t - timedelta(days=1)})
    receipts.document("b" * 32).set({"status": "completed", "expire_at": t + timedelta(days=9)})
    receipts.document("c" * 32).set({"status": "in_progress", "completed_at": None})
    # Act
    record = run_scheduled(cloud, "purge_logs")
    # Assert
    assert_run_record_shape(record, "purge_logs")
    assert record["status"] == runner.SUCCEEDED
    assert record["counts"]["access_records_deleted"] == 2
    assert record["counts"]["run_records_deleted"] == 1
    assert record["counts"]["erasure_receipts_deleted"] == 1
    remaining = {s.id for s in fs.collection("access").stream()}
    assert remaining == kept and not remaining & old
    assert doc(cloud, f"{runner.RUNS}/{old_run.id}") is None
    assert doc(cloud, f"{runner.RUNS}/{recent_run.id}") is not None
    assert {s.id for s in receipts.stream()} == {"b" * 32, "c" * 32}


def test_purge_logs_deletes_export_archives_once_their_link_expired(clean_firestore):
    # Arrange: two export archives of one user, and one of another user
    cloud = clean_firestore
    uid, other = new_uid(), new_uid()
    names = [f"exports/{uid}/{secrets.token_hex(8)}.zip" for _ in range(2)]
    for name in names:
        put(cloud, "derived", name, b"PK\x05\x06" + b"\x00" * 18)
    other_name = f"exports/{other}/x.zip"
    put(cloud, "derived", other_name)
    link = timedelta(seconds=cloud.settings().export_link_seconds)
    # Act 1: while the link may still be valid, nothing goes
    early = runner.run(cloud.clients(), "purge_logs", now=lambda: now() + link - timedelta(hours=1),
                       scope=f"{uid}/", page_size=1)
    # Assert 1
    assert early["counts"].get("exports_deleted", 0) == 0
    assert all(exists(cloud, "derived", n) for n in names)
    # Act 2: past the link's life
    late = runner.run(cloud.clients(), "purge_logs", now=lambda: now() + link + timedelta(hours=1),
                      scope=f"{uid}/", page_size=1)
    # Assert 2
    assert late["counts"]["exports_deleted"] == 2 and late["errors"] == []
    assert not any(exists(cloud, "derived", n) for n in names)
    assert exists(cloud, "derived", other_name)  # outside the scope: untouched


# --- clean_uploads --------------------------------------------------------------------------

def seed_upload(cloud: LocalCloud, uid: str, status: str, created: datetime, **fields) -> str:
    upload_id = uuid.uuid4().hex
    cloud.clients().firestore.collection("uploads").document(upload_id).set({
        "owner": uid, "filename": "scan.zip", "size": 1, "content_type": "application/zip",
        "status": status, "created_at": created, "updated_at": fields.pop("updated_at", created),
        "object": ids.upload_object(uid, upload_id), "counts_toward_quota": True, **fields})
    return upload_id


def seed_result(cloud: LocalCloud, uid: str, upload_id: str, index: int, status: str,
                **fields) -> None:
    (cloud.clients().firestore.collection("uploads").document(upload_id).collection("files")
     .document(f"{index:06d}").set({"owner": uid, "upload_id": upload_id, "index": index,
                                    "status": status, "recorded_at": now(), **fields}))


def test_clean_uploads_expires_pending_finishes_stalled_and_deletes_finished_raw_objects(
        clean_firestore):
    # Arrange
    cloud = clean_firestore
    uid = new_uid()
    s = cloud.settings()
    t = now()
    stale_pending = seed_upload(cloud, uid, "pending",
                                t - timedelta(hours=s.pending_upload_expiry_hours, minutes=5))
    fresh_pending = seed_upload(cloud, uid, "pending", t - timedelta(hours=1))
    stalled = seed_upload(cloud, uid, "processing", t - timedelta(days=3),
                          updated_at=t - timedelta(hours=s.stalled_upload_expiry_hours + 1))
    seed_result(cloud, uid, stalled, 0, "rejected", reason="not_dicom")
    moving = seed_upload(cloud, uid, "processing", t - timedelta(days=3),
                         updated_at=t - timedelta(minutes=5))
    old_done = seed_upload(cloud, uid, "complete", t - timedelta(hours=3),
                           completed_at=t - timedelta(hours=s.raw_upload_keep_hours + 1))
    old_failed = seed_upload(cloud, uid, "failed", t - timedelta(hours=3),
                             completed_at=t - timedelta(hours=s.raw_upload_keep_hours + 1))
    just_done = seed_upload(cloud, uid, "partial", t - timedelta(hours=1),
                            completed_at=t - timedelta(minutes=5))
    # Raw objects of final uploads: the finalize event finds a final upload and does nothing.
    for upload_id in (old_done, old_failed, just_done):
        put(cloud, "uploads", ids.upload_object(uid, upload_id))
    # Act
    record = run_scheduled(cloud, "clean_uploads")
    # Assert
    assert_run_record_shape(record, "clean_uploads")
    assert record["status"] == runner.SUCCEEDED, record
    assert record["counts"]["pending_uploads_expired"] == 1
    assert record["counts"]["stalled_uploads_finished"] == 1
    assert record["counts"]["raw_objects_deleted"] == 2
    expired = doc(cloud, f"uploads/{stale_pending}")
    assert expired["status"] == "failed" and expired["reason"] == "expired"
    assert expired["counts_toward_quota"] is False
    assert doc(cloud, f"uploads/{fresh_pending}")["status"] == "pending"
    finished = doc(cloud, f"uploads/{stalled}")
    assert finished["status"] == "failed" and finished["reason"] == "gave_up"
    assert finished["counts"]["rejected"] == 1
    assert doc(cloud, f"uploads/{moving}")["status"] == "processing"
    assert not exists(cloud, "uploads", ids.upload_object(uid, old_done))
    assert not exists(cloud, "uploads", ids.upload_object(uid, old_failed))
    assert exists(cloud, "uploads", ids.upload_object(uid, just_done))
    # Upload metadata is kept while the account exists: only the raw bytes went.
    assert doc(cloud, f"uploads/{old_done}")["status"] == "complete"


def _wait_finalize_seen(cloud: LocalCloud, name: str) -> None:
    wait_for(lambda: any(line.get("event") == "event_received"
                         and line.get("ce_subject") == f"objects/{name}"
                         for line in cloud.log_lines("on-upload-finalized")),
             timeout=60, what="finalize event handled")
    time.sleep(2)  # the handler reads the record right after logging the event


def test_clean_uploads_orphan_and_in_flight_raw_objects_with_injected_clock(clean_firestore):
    # Arrange: objects whose record went away (an erased or crashed upload), one in flight
    cloud = clean_firestore
    uid = new_uid()
    fs = cloud.clients().firestore
    s = cloud.settings()
    t = now()
    orphans, in_flight = [], None
    for i in range(3):
        upload_id = seed_upload(cloud, uid, "complete", t, completed_at=t)
        name = ids.upload_object(uid, upload_id)
        put(cloud, "uploads", name)
        _wait_finalize_seen(cloud, name)
        if i < 2:
            fs.collection("uploads").document(upload_id).delete()
            orphans.append(name)
        else:
            fs.collection("uploads").document(upload_id).update({"status": "processing",
                                                                 "updated_at": t})
            in_flight = name
    grace = timedelta(hours=s.reconcile_grace_hours)
    # Act 1: within the grace period nothing goes
    first = runner.run(cloud.clients(), "clean_uploads", now=lambda: t + grace - timedelta(minutes=5),
                       scope=f"{uid}/", page_size=2)
    assert first["counts"].get("orphan_raw_objects_deleted", 0) == 0
    assert all(exists(cloud, "uploads", n) for n in orphans)
    # Act 2: past it (but the upload in flight has moved recently, by that clock)
    later = t + grace + timedelta(minutes=5)
    fs.collection("uploads").document(in_flight.split("/")[1]).update({"updated_at": later})
    second = runner.run(cloud.clients(), "clean_uploads", now=lambda: later, scope=f"{uid}/",
                        page_size=2)
    # Assert
    assert second["counts"]["orphan_raw_objects_deleted"] == 2, second
    assert second["counts"]["raw_objects_in_flight"] == 1
    assert not any(exists(cloud, "uploads", n) for n in orphans)
    assert exists(cloud, "uploads", in_flight)
    # Run again: already gone is done
    third = runner.run(cloud.clients(), "clean_uploads", now=lambda: later, scope=f"{uid}/")
    assert third["status"] == runner.SUCCEEDED
    assert third["counts"].get("orphan_raw_objects_deleted", 0) == 0


# --- reconcile ------------------------------------------------------------------------------

def test_reconcile_through_pubsub_removes_documents_whose_object_is_gone(clean_firestore):
    # Arrange: three instance documents of one series; one object was lost long ago, one
    # document is recent (its object may still be on its way), one is whole.
    cloud = clean_firestore
    uid = new_uid()
    fs = cloud.clients().firestore
    t = now()
    grace = timedelta(hours=cloud.settings().reconcile_grace_hours)
    study, series = secrets.token_hex(16), secrets.token_hex(16)
    fs.document(f"studies/{study}").set({"owner": uid, "series_count": 1, "instance_count": 3})
    fs.document(f"studies/{study}/series/{series}").set(
        {"owner": uid, "study_key": study, "instance_count": 3, "preview": {"status": "none"}})
    keys = [secrets.token_hex(16) for _ in range(3)]
    whole = ids.instance_object(uid, study, keys[0])
    put(cloud, "instances", whole, b"not indexed: its name matches no SOP instance")
    for key, indexed_at in zip(keys, (t - 2 * grace, t - 2 * grace, t - grace / 2), strict=True):
        fs.document(instance_path(study, series, key)).set({
            "owner": uid, "study_key": study, "series_key": series, "size": 10,
            "object": ids.instance_object(uid, study, key), "generation": "1",
            "indexed_at": indexed_at, "is_image": False})
    # Act
    record = run_scheduled(cloud, "reconcile")
    # Assert
    assert_run_record_shape(record, "reconcile")
    assert record["counts"]["documents_removed"] == 1, record
    assert record["counts"]["settle_requested"] == 1
    assert doc(cloud, instance_path(study, series, keys[0])) is not None
    assert doc(cloud, instance_path(study, series, keys[1])) is None
    assert doc(cloud, instance_path(study, series, keys[2])) is not None
    # ... and the series' counts are recomputed by the settle function
    settled = wait_for(lambda: (d := doc(cloud, f"studies/{study}/series/{series}"))
                       and d.get("counts_at") and d, timeout=120, what="series settled")
    assert settled["instance_count"] == 2
    wait_for(lambda: doc(cloud, f"studies/{study}").get("instance_count") == 2, timeout=60,
             what="study counts recomputed")
    assert exists(cloud, "instances", whole)


def test_reconcile_repairs_or_removes_every_orphan_kind(clean_firestore):
    # Arrange
    cloud = clean_firestore
    uid = new_uid()
    fs = cloud.clients().firestore
    key = cloud.settings().hash_key
    # 1. object without document, indexable: its document was lost (crash after the write).
    # Without pixel data, so its settle builds no preview (a preview written now would be
    # "older than the grace period" by this test's clock, and its series might not point at
    # it yet when the preview pass looks).
    lost, study, series, instance = canonical_instance(cloud, uid, image=False)
    wait_indexed(cloud, instance_path(study, series, instance))
    fs.document(instance_path(study, series, instance)).delete()
    # 2. object without document that cannot be indexed: unreadable bytes
    unreadable = ids.instance_object(uid, secrets.token_hex(16), secrets.token_hex(16))
    put(cloud, "instances", unreadable, b"\x00" * 300)
    # 3. object without document, named for another SOP instance
    data, _ = dicom_bytes()
    misnamed = ids.instance_object(uid, secrets.token_hex(16), secrets.token_hex(16))
    put(cloud, "instances", misnamed, data)
    # 4. object of a study whose deletion is under way: removed, never indexed again
    deleting, d_study, d_series, d_instance = canonical_instance(cloud, uid)
    wait_indexed(cloud, instance_path(d_study, d_series, d_instance))
    fs.document(instance_path(d_study, d_series, d_instance)).delete()
    fs.collection(deletion.COLLECTION).document(
        deletion.deletion_id(key, uid, d_study)).set(
        {"owner": uid, "study_key": d_study, "status": deletion.IN_PROGRESS})
    # 5. document without object
    g_study, g_series, g_instance = (secrets.token_hex(16) for _ in range(3))
    fs.document(instance_path(g_study, g_series, g_instance)).set({
        "owner": uid, "study_key": g_study, "series_key": g_series,
        "object": ids.instance_object(uid, g_study, g_instance), "indexed_at": now()})
    # 6. previews: one of no series, one its series points at
    stray_preview = ids.preview_object(uid, secrets.token_hex(16), secrets.token_hex(16))
    put(cloud, "derived", stray_preview, b"\x89PNG")
    p_study, p_series = secrets.token_hex(16), secrets.token_hex(16)
    kept_preview = ids.preview_object(uid, p_study, p_series)
    put(cloud, "derived", kept_preview, b"\x89PNG")
    fs.document(f"studies/{p_study}/series/{p_series}").set(
        {"owner": uid, "preview": {"status": "ready", "object": kept_preview}})
    grace = timedelta(hours=cloud.settings().reconcile_grace_hours)
    before_grace = now() + grace - timedelta(minutes=10)
    after_grace = now() + grace + timedelta(minutes=10)
    # Act 1: within the grace period nothing is touched
    first = runner.run(cloud.clients(), "reconcile", now=lambda: before_grace, scope=f"{uid}/",
                       page_size=2)
    # Assert 1
    assert first["status"] == runner.SUCCEEDED, first
    assert first["counts"].get("objects_removed", 0) == 0
    assert first["counts"].get("documents_removed", 0) == 0
    assert first["counts"].get("previews_removed", 0) == 0
    for name in (lost, unreadable, misnamed, deleting):
        assert exists(cloud, "instances", name)
    # Act 2: past it, in small pages
    second = runner.run(cloud.clients(), "reconcile", now=lambda: after_grace, scope=f"{uid}/",
                        page_size=2)
    # Assert 2
    assert second["status"] == runner.SUCCEEDED, second
    counts = second["counts"]
    assert counts["objects_reindexed"] == 1
    assert counts["objects_removed"] == 3
    assert counts["documents_removed"] == 1
    assert counts["previews_removed"] == 1
    assert counts["passes_completed"] == 1
    assert doc(cloud, instance_path(study, series, instance))["object"] == lost
    assert exists(cloud, "instances", lost)
    assert not exists(cloud, "instances", unreadable)
    assert not exists(cloud, "instances", misnamed)
    assert not exists(cloud, "instances", deleting)
    assert doc(cloud, instance_path(d_study, d_series, d_instance)) is None
    assert doc(cloud, instance_path(g_study, g_series, g_instance)) is None
    assert not exists(cloud, "derived", stray_preview)
    assert exists(cloud, "derived", kept_preview)
    # The re-indexed series is settled again (counts and preview)
    settled = wait_for(lambda: (d := doc(cloud, f"studies/{study}/series/{series}"))
                       and d.get("counts_at") and (d.get("preview") or {}).get("status")
                       != "pending" and d, timeout=120, what="series settled")
    assert settled["instance_count"] == 1
    assert settled["preview"]["status"] == "none"
    # Act 3: another pass finds nothing more to do
    third = runner.run(cloud.clients(), "reconcile", now=lambda: after_grace, scope=f"{uid}/")
    assert third["counts"].get("objects_reindexed", 0) == 0
    assert third["counts"].get("objects_removed", 0) == 0
    assert third["counts"]["instances_matched"] == 1


def test_reconcile_stops_at_its_budget_and_the_next_run_goes_on(clean_firestore):
    # Arrange: documents without objects, more than one page
    cloud = clean_firestore
    uid = new_uid()
    fs = cloud.clients().firestore
    study, series = secrets.token_hex(16), secrets.token_hex(16)
    keys = sorted(secrets.token_hex(16) for _ in range(5))
    for key in keys:
        fs.document(instance_path(study, series, key)).set({
            "owner": uid, "study_key": study, "series_key": series,
            "object": ids.instance_object(uid, study, key), "indexed_at": now()})
    later = now() + timedelta(hours=cloud.settings().reconcile_grace_hours + 1)
    # Act 1: no time at all: one page, then stop
    first = runner.run(cloud.clients(), "reconcile", now=lambda: later, scope=f"{uid}/",
                       page_size=2, budget_seconds=0)
    # Assert 1
    assert first["status"] == runner.PARTIAL and first["more"] is True
    assert first["counts"]["documents_removed"] == 2
    state = [s.to_dict() for s in fs.collection("retention_state").stream()]
    assert len(state) == 1 and state[0]["cursor"] == ids.instance_object(uid, study, keys[1])
    # Act 2: the next run continues from the saved position and finishes the pass
    second = runner.run(cloud.clients(), "reconcile", now=lambda: later, scope=f"{uid}/",
                        page_size=2)
    # Assert 2
    assert second["status"] == runner.SUCCEEDED
    assert second["counts"]["resumed"] == 1
    assert second["counts"]["documents_removed"] == 3
    assert second["counts"]["passes_completed"] == 1
    assert list(fs.collection("retention_state").stream()) == []
    assert not [s for s in fs.collection_group("instances").stream()
                if (s.to_dict() or {}).get("owner") == uid]
    # The settle messages of a series with no documents left are answered without retries
    # (the series document does not exist).


# --- resume_erasures ------------------------------------------------------------------------

def test_resume_erasures_queues_again_only_requests_that_stopped_moving(clean_firestore):
    # Arrange: an erasure that has not moved for an hour, one that moved a minute ago
    cloud = clean_firestore
    user = cloud.create_user()
    fs = cloud.clients().firestore
    t = now()
    stale = fs.collection("privacy_requests").document()
    stale.set({"owner": user.uid, "type": "erasure", "status": "in_progress",
               "received_at": t - timedelta(hours=2), "updated_at": t - timedelta(hours=1)})
    fresh = fs.collection("privacy_requests").document()
    fresh.set({"owner": "someone-else", "type": "erasure", "status": "in_progress",
               "received_at": t, "updated_at": t - timedelta(minutes=1)})
    done = fs.collection("privacy_requests").document()
    done.set({"owner": "a-third", "type": "erasure", "status": "completed",
              "received_at": t - timedelta(days=2), "updated_at": t - timedelta(days=1)})
    # Act
    record = run_scheduled(cloud, "resume_erasures")
    # Assert
    assert_run_record_shape(record, "resume_erasures")
    assert record["status"] == runner.SUCCEEDED, record
    assert record["counts"]["requests_requeued"] == 1
    # The queued job arrives: the erasure writes its marker first thing
    marker = ids.erasure_marker(cloud.settings().hash_key, user.uid)
    wait_for(lambda: doc(cloud, f"erasures/{marker}"), timeout=120,
             what="the queued erasure to run")
    assert doc(cloud, f"privacy_requests/{fresh.id}")["status"] == "in_progress"
    for other in ("someone-else", "a-third"):
        assert doc(cloud, f"erasures/{ids.erasure_marker(cloud.settings().hash_key, other)}") \
            is None


# --- usage_trends ---------------------------------------------------------------------------

def test_usage_trends_publishes_only_figures_of_five_or_more_users(clean_firestore):
    # Arrange: yesterday's uploads and studies of eight users
    cloud = clean_firestore
    fs = cloud.clients().firestore
    policy = cloud.settings().policy_version
    yesterday = (now() - timedelta(days=1)).date()
    noon = datetime(yesterday.year, yesterday.month, yesterday.day, 12, tzinfo=UTC)
    uids = [new_uid() for _ in range(8)]
    consenting = uids[:6]
    restricted = uids[7]
    for uid in uids:
        profile = {"owner": uid, "consent": {"analytics": uid in consenting,
                                             "policy_version": policy, "at": noon}}
        if uid == restricted:
            profile["restricted"] = True
        fs.document(f"users/{uid}").set(profile)
    # uploads: complete from all 8 (one is restricted), failed from 2
    for uid in uids:
        seed_upload(cloud, uid, "complete", noon, counts={"stored": 10, "rejected": 0})
    for uid in uids[:2]:
        upload_id = seed_upload(cloud, uid, "failed", noon, counts={"stored": 0, "rejected": 1})
        seed_result(cloud, uid, upload_id, 0, "rejected", reason="not_dicom")
    # rejections by reason: 5 users with encrypted members
    for uid in uids[2:7]:
        upload_id = seed_upload(cloud, uid, "partial", noon, counts={"stored": 1, "rejected": 2})
        seed_result(cloud, uid, upload_id, 0, "rejected", reason="encrypted")
        seed_result(cloud, uid, upload_id, 1, "rejected", reason="encrypted")
    # studies: CT from all (5 consenting count), MR from 3 consenting
    for uid in uids:
        fs.collection("studies").document(secrets.token_hex(16)).set(
            {"owner": uid, "created_at": noon, "modalities": ["CT"] + (
                ["MR"] if uid in consenting[:3] else [])})
    # an upload of the day before (not counted)
    seed_upload(cloud, uids[0], "complete", noon - timedelta(days=1), counts={"stored": 99})
    # Act
    record = run_scheduled(cloud, "usage_trends")
    # Assert
    assert_run_record_shape(record, "usage_trends")
    assert record["status"] == runner.SUCCEEDED, record
    report = doc(cloud, f"usage_daily/{yesterday.isoformat()}")
    metrics = report["metrics"]
    assert report["min_users"] == 5
    # complete: 7 users (the restricted one is not counted), partial: 5 users; failed: only
    # 2 users, so it is dropped, and the total with it (total - buckets would reveal it)
    assert metrics["uploads"]["buckets"] == {"complete": 7, "partial": 5}
    assert metrics["uploads"]["total"] is None and metrics["uploads"]["suppressed"]
    assert metrics["instances_stored"]["buckets"] == {"all": 7 * 10 + 5}
    assert metrics["instances_stored"]["total"] == 75
    assert metrics["rejections"]["buckets"] == {"encrypted": 10}
    assert "not_dicom" not in metrics["rejections"]["buckets"]
    assert metrics["rejections"]["total"] is None and metrics["rejections"]["suppressed"]
    assert metrics["studies_by_modality"]["basis"] == "consent"
    assert metrics["studies_by_modality"]["buckets"] == {"CT": 6}
    assert metrics["studies_by_modality"]["total"] is None  # MR (3 users) was dropped
    # No identifier anywhere in what is published
    text = json.dumps(report, default=str)
    assert not any(uid in text for uid in uids)


# --- overlap, continuation, unknown jobs ----------------------------------------------------

def test_clean_uploads_overlapping_runs_expire_each_pending_upload_once(clean_firestore):
    # Arrange
    cloud = clean_firestore
    uid = new_uid()
    t = now()
    stale = [seed_upload(cloud, uid, "pending", t - timedelta(days=2, minutes=i))
             for i in range(20)]
    fresh = seed_upload(cloud, uid, "pending", t - timedelta(minutes=5))
    results: list[dict[str, Any]] = []

    def one():
        results.append(runner.run(cloud.clients(), "clean_uploads", now=lambda: t, page_size=3,
                                  scope=f"{uid}/", lease=False))

    # Act: three runs at once, no lease
    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RUN_TIMEOUT)
    # Assert: each upload was changed by exactly one run (update-time precondition)
    assert len(results) == 3 and all(r["errors"] == [] for r in results)
    assert sum(r["counts"].get("pending_uploads_expired", 0) for r in results) == 20
    for upload_id in stale:
        record = doc(cloud, f"uploads/{upload_id}")
        assert record["status"] == "failed" and record["reason"] == "expired"
    assert doc(cloud, f"uploads/{fresh}")["status"] == "pending"


def test_a_run_out_of_time_continues_in_a_new_message(clean_firestore):
    # Arrange
    cloud = clean_firestore
    uid = new_uid()
    t = now()
    expired = [seed_share(cloud, uid, t - timedelta(minutes=i + 1)) for i in range(5)]
    # Act: a run with no time left does one page and publishes its continuation
    first = runner.run(cloud.clients(), "expire_links", page_size=2, budget_seconds=0,
                       continuation=True)
    # Assert
    assert first["status"] == runner.PARTIAL and first["more"] is True
    assert first["counts"]["shares_expired"] == 2
    fs = cloud.clients().firestore
    continued = wait_for(
        lambda: [r for r in (s.to_dict() for s in fs.collection(runner.RUNS).where(
            filter=FieldFilter("continuation_of", "==", first["id"])).stream())
            if r["status"] != runner.RUNNING],
        timeout=RUN_TIMEOUT, interval=0.5, what="the continuation's run")
    assert continued[0]["job"] == "expire_links"
    assert continued[0]["counts"]["shares_expired"] == 3
    assert all(doc(cloud, f"shares/{s}") is None for s in expired)


def test_unknown_job_is_logged_and_acknowledged_not_retried(clean_firestore):
    # Arrange
    cloud = clean_firestore
    publisher = _publisher()
    topic = publisher.topic_path(cloud.project, "retention-jobs")
    # Act
    message_id = publisher.publish(topic, b'{"job":"drop_all_tables"}').result(timeout=30)
    bad_id = publisher.publish(topic, b"\xff not json").result(timeout=30)
    # Assert: logged as unknown, no run record, delivered once (a 2xx: no retry)
    for mid, job in ((message_id, "drop_all_tables"), (bad_id, "")):
        wait_for(lambda m=mid: [line for line in cloud.log_lines("run-retention-job")
                                if line.get("event") == "retention_job_unknown"
                                and line.get("message_id") == m],
                 timeout=60, what="unknown job logged")
        received = [line for line in cloud.log_lines("run-retention-job")
                    if line.get("event") == "scheduled_job_received"
                    and line.get("message_id") == mid]
        assert received[0]["job"] == job
    time.sleep(3)
    for mid in (message_id, bad_id):
        assert runs_of_message(cloud, mid) == []
        deliveries = [line for line in cloud.log_lines("run-retention-job")
                      if line.get("event") == "event_received" and line.get("ce_id") == mid]
        assert len(deliveries) == 1


def test_operators_read_the_latest_runs_of_a_job(clean_firestore):
    # Arrange
    cloud = clean_firestore
    first = run_scheduled(cloud, "expire_links")
    second = run_scheduled(cloud, "expire_links")
    # Act
    runs = runner.recent_runs(cloud.clients().firestore, "expire_links", limit=5)
    # Assert: newest first, with the fields an operator needs
    assert [r["id"] for r in runs[:2]] == [second["id"], first["id"]]
    assert runs[0]["status"] == runner.SUCCEEDED and runs[0]["counts"] == {}
