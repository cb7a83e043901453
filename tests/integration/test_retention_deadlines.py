"""The ``watch_deadlines`` retention job on the local cloud: the policy's 30-day answer to a
data-subject request is watched. A request due within 5 days is marked at risk; one past its
due date is marked overdue and logs one ERROR ``privacy_request_overdue`` line (ids only) per
run, which the deploy plan's log-based alert counts; answered requests are left alone.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pacs.retention import runner

from tests.retention_helpers import assert_run_record_shape, doc, now, run_scheduled

pytestmark = pytest.mark.localcloud


def _seed(cloud, uid: str, status: str, due_in: timedelta) -> str:
    ref = cloud.clients().firestore.collection("privacy_requests").document()
    received = now() + due_in - timedelta(days=30)
    ref.set({"owner": uid, "type": "export", "status": status, "reason": None,
             "received_at": received, "due_at": received + timedelta(days=30),
             "updated_at": received, "completed_at": None})
    return ref.id


def test_requests_near_or_past_their_due_date_are_marked_and_overdue_ones_alert(clean_firestore):
    # Arrange: open requests due in 20 days, in 3 days and 2 days ago; an answered overdue one
    cloud = clean_firestore
    user = cloud.create_user(profile=True)
    calm = _seed(cloud, user.uid, "received", timedelta(days=20))
    soon = _seed(cloud, user.uid, "in_progress", timedelta(days=3))
    late = _seed(cloud, user.uid, "received", -timedelta(days=2, hours=1))
    answered = _seed(cloud, user.uid, "completed", -timedelta(days=9))
    # Act
    record = run_scheduled(cloud, "watch_deadlines")
    # Assert: the run, the marks
    assert_run_record_shape(record, "watch_deadlines")
    assert record["status"] == runner.SUCCEEDED, record
    assert record["counts"]["requests_open"] == 3, record
    assert record["counts"]["requests_at_risk"] == 1 and record["counts"]["requests_overdue"] == 1
    marks = {rid: doc(cloud, f"privacy_requests/{rid}") for rid in (calm, soon, late, answered)}
    assert "at_risk" not in marks[calm] and "at_risk" not in marks[answered]
    assert marks[soon]["at_risk"] is True and marks[soon]["overdue"] is False
    assert marks[late]["at_risk"] is True and marks[late]["overdue"] is True
    # One ERROR line for the overdue request, with ids and counts only (no uid, no email)
    lines = [line for line in cloud.log_lines("run-retention-job")
             if line.get("event") == "privacy_request_overdue"]
    assert [(line["severity"], line["request_id"], line["days_overdue"]) for line in lines] == \
        [("ERROR", late, 2)]
    assert user.uid not in json.dumps(lines) and user.email not in json.dumps(lines)
    # A second run alerts again (the request is still overdue) and marks nothing new.
    again = run_scheduled(cloud, "watch_deadlines")
    assert again["counts"]["requests_overdue"] == 1 and "requests_marked" not in again["counts"]
