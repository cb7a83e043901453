"""The ``purge_logs`` retention job on the local cloud: access records past their retention,
old run records, expired erasure receipts, and export archives once their download link has
expired; nothing younger.

How the jobs are run and what every test checks: ``tests/retention_helpers.py``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from pacs.retention import runner

from tests.retention_helpers import (
    assert_run_record_shape,
    doc,
    exists,
    new_uid,
    now,
    put,
    run_scheduled,
)

pytestmark = pytest.mark.localcloud


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
    recent_run.set({"job": "expire_links", "status": "succeeded",
                    "started_at": t - timedelta(days=1)})
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
