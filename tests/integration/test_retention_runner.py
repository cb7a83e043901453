"""The retention runner on the local cloud, whatever the job: a run out of time continues
in a new message, an unknown job is logged and acknowledged (never retried, no run record),
and operators read the latest runs of a job.

How the jobs are run and what every test checks: ``tests/retention_helpers.py``.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs.retention import runner

from tests.localcloud_fixture import wait_for
from tests.retention_helpers import (
    RUN_TIMEOUT,
    doc,
    new_uid,
    now,
    pubsub_publisher,
    run_scheduled,
    runs_of_message,
    seed_share,
)

pytestmark = pytest.mark.localcloud


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
    publisher = pubsub_publisher()
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
