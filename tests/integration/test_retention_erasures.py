"""The ``resume_erasures`` retention job on the local cloud: erasure requests that stopped
moving are queued again, and only those.

How the jobs are run and what every test checks: ``tests/retention_helpers.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from pacs import ids
from pacs.retention import runner

from tests.localcloud_fixture import wait_for
from tests.retention_helpers import assert_run_record_shape, doc, now, run_scheduled

pytestmark = pytest.mark.localcloud


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
