"""The ``usage_trends`` retention job on the local cloud: yesterday's usage figures are
published only where five or more users stand behind them (a total is dropped with any
bucket that would reveal it), modalities only of consenting users, never a restricted
user's data, and no identifier anywhere.

How the jobs are run and what every test checks: ``tests/retention_helpers.py``.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from pacs.retention import runner

from tests.retention_helpers import (
    assert_run_record_shape,
    doc,
    new_uid,
    now,
    run_scheduled,
    seed_result,
    seed_upload,
)

pytestmark = pytest.mark.localcloud


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
