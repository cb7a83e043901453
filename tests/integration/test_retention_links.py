"""The ``expire_links`` retention job on the local cloud: expired shares are deleted, each
leaving one access record of the access log's shape, and runs that overlap (two scheduled
messages at once, or direct runs without the lease) expire each share exactly once.

How the jobs are run and what every test checks: ``tests/retention_helpers.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs.retention import links, runner

from localcloud import scheduler
from tests.localcloud_fixture import LocalCloud
from tests.retention_helpers import (
    assert_run_record_shape,
    doc,
    new_uid,
    now,
    pubsub_publisher,
    run_overlapping,
    run_scheduled,
    schedule_entry,
    seed_share,
    wait_run,
)

pytestmark = pytest.mark.localcloud


def expiry_records(cloud: LocalCloud) -> list[dict[str, Any]]:
    query = cloud.clients().firestore.collection("access").where(
        filter=FieldFilter("kind", "==", "share_expired"))
    return [{"id": s.id, **(s.to_dict() or {})} for s in query.stream()]


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
    publisher = pubsub_publisher()
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
    # Act
    results = run_overlapping(cloud, "expire_links", now=lambda: t, page_size=4)
    # Assert: every expired share went, each with exactly one record; no errors
    assert len(results) == 3 and all(r["errors"] == [] for r in results)
    records = expiry_records(cloud)
    assert sorted(r["share_id"] for r in records) == sorted(expired)
    assert {r["id"] for r in records} == {links.expiry_record_id(cloud.settings().hash_key, s)
                                          for s in expired}
    assert all(doc(cloud, f"shares/{s}") is None for s in expired)
    assert all(doc(cloud, f"shares/{s}") is not None for s in active)
