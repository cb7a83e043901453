"""The ``clean_uploads`` retention job on the local cloud: pending uploads that never
started expire, stalled ones are finished, raw objects of finished uploads are deleted after
their keep time and orphaned raw objects after the grace period (never one in flight), and
overlapping runs change each upload once.

How the jobs are run and what every test checks: ``tests/retention_helpers.py``.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from pacs import ids
from pacs.retention import runner

from tests.localcloud_fixture import LocalCloud, wait_for
from tests.retention_helpers import (
    assert_run_record_shape,
    doc,
    exists,
    new_uid,
    now,
    put,
    run_overlapping,
    run_scheduled,
    seed_result,
    seed_upload,
)

pytestmark = pytest.mark.localcloud


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
    first = runner.run(cloud.clients(), "clean_uploads",
                       now=lambda: t + grace - timedelta(minutes=5), scope=f"{uid}/", page_size=2)
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


def test_clean_uploads_overlapping_runs_expire_each_pending_upload_once(clean_firestore):
    # Arrange
    cloud = clean_firestore
    uid = new_uid()
    t = now()
    stale = [seed_upload(cloud, uid, "pending", t - timedelta(days=2, minutes=i))
             for i in range(20)]
    fresh = seed_upload(cloud, uid, "pending", t - timedelta(minutes=5))
    # Act: three runs at once, no lease
    results = run_overlapping(cloud, "clean_uploads", now=lambda: t, page_size=3,
                              scope=f"{uid}/")
    # Assert: each upload was changed by exactly one run (update-time precondition)
    assert len(results) == 3 and all(r["errors"] == [] for r in results)
    assert sum(r["counts"].get("pending_uploads_expired", 0) for r in results) == 20
    for upload_id in stale:
        record = doc(cloud, f"uploads/{upload_id}")
        assert record["status"] == "failed" and record["reason"] == "expired"
    assert doc(cloud, f"uploads/{fresh}")["status"] == "pending"
