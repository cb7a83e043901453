"""Round trips through the real emulators, router and functions (issue: the local cloud)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from localcloud import config, scheduler
from tests.localcloud_fixture import wait_for
from tests.rules_matrix import assert_owner_reads_only, assert_reads

pytestmark = pytest.mark.localcloud


def _events_for(cloud, function: str, subject: str) -> list[dict]:
    return [line for line in cloud.log_lines(function)
            if line.get("event") == "event_received" and line.get("ce_subject") == subject]


def test_object_write_reaches_function_as_eventarc_cloudevent(cloud_env):
    # Arrange
    bucket = cloud_env.clients().storage.bucket(cloud_env.buckets["uploads"])
    name = f"roundtrip/{uuid.uuid4().hex}"
    # Act
    bucket.blob(name).upload_from_string(b"not dicom")
    events = wait_for(lambda: _events_for(cloud_env, "on-upload-finalized", f"objects/{name}"),
                      what="finalize event")
    # Assert
    event = events[0]
    assert event["ce_type"] == "google.cloud.storage.object.v1.finalized"
    assert event["ce_source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket.name}"
    assert event["ce_id"]
    assert datetime.fromisoformat(event["ce_time"].replace("Z", "+00:00")).tzinfo is not None
    # The instances-bucket function is not triggered on the uploads bucket.
    time.sleep(0.5)
    assert _events_for(cloud_env, "on-instance-finalized", f"objects/{name}") == []


def test_router_duplicate_switch_delivers_each_event_twice(cloud_env):
    # Arrange
    bucket = cloud_env.clients().storage.bucket(cloud_env.buckets["instances"])
    name = f"dup/{uuid.uuid4().hex}"
    cloud_env.set_deliveries(2)
    try:
        # Act
        bucket.blob(name).upload_from_string(b"x")
        events = wait_for(
            lambda: (e := _events_for(cloud_env, "on-instance-finalized", f"objects/{name}"))
            and len(e) >= 2 and e, what="two deliveries")
    finally:
        cloud_env.set_deliveries(1)
    # Assert: the same event (same id) twice, as an at-least-once delivery would do.
    assert len({e["ce_id"] for e in events}) == 1
    assert len(events) == 2


def test_a_stopped_stack_leaves_no_subscription_on_the_shared_events_topic(cloud_env, tmp_path):
    # Arrange: a stack's router subscribes to the events topic that every stack shares
    from google.cloud import pubsub_v1

    from localcloud.router import storage_subscription
    from tests.localcloud_fixture import LocalCloud, stop_test_cloud

    project = f"demo-test-{uuid.uuid4().hex[:10]}"
    topic = cloud_env.env["PACS_GCS_EVENTS_TOPIC"]
    subscriber = pubsub_v1.SubscriberClient()
    subscriber.create_subscription(name=storage_subscription(project), topic=topic)
    # Its own environment: stopping a stack also deletes the signing key file its
    # environment names, and the running stack's must stay.
    stopped = LocalCloud(project, {"PUBSUB_EMULATOR_HOST": cloud_env.env["PUBSUB_EMULATOR_HOST"]},
                         cloud_env.cfg, tmp_path, [])
    publisher = pubsub_v1.PublisherClient()

    def subscribed() -> list[str]:
        return list(publisher.list_topic_subscriptions(topic=topic))

    assert storage_subscription(project) in subscribed()
    key_file = Path(cloud_env.env["PACS_SIGNING_KEY_FILE"])
    had_key = key_file.is_file()  # made when the running stack first signs
    # Act
    stop_test_cloud(stopped)
    # Assert: gone (kept, it would hold a copy of every later event of every stack), and
    # the running stack's own subscription is still there
    assert storage_subscription(project) not in subscribed()
    assert storage_subscription(cloud_env.project) in subscribed()
    assert key_file.is_file() == had_key


def test_scheduled_message_reaches_retention_function(cloud_env):
    # Arrange
    from google.cloud import pubsub_v1

    job = scheduler.job_by_name("reconcile")
    publisher = pubsub_v1.PublisherClient()
    # Act: the same publish the cron loop makes
    message_id = scheduler.publish(publisher, cloud_env.project, job)
    received = wait_for(lambda: [line for line in cloud_env.log_lines("run-retention-job")
                                 if line.get("event") == "scheduled_job_received"
                                 and line.get("message_id") == message_id], what="job message")
    # Assert
    assert received[0]["job"] == "reconcile"
    events = [line for line in cloud_env.log_lines("run-retention-job")
              if line.get("event") == "event_received" and line.get("ce_id") == message_id]
    assert events[0]["ce_type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert events[0]["ce_source"] == (
        f"//pubsub.googleapis.com/projects/{cloud_env.project}/topics/retention-jobs")


def test_id_token_verifies_and_revocation_is_checked(cloud_env):
    # Arrange
    from firebase_admin import auth as admin_auth
    from pacs.auth import verify_caller
    from pacs.errors import AuthError

    user = cloud_env.create_user()
    app = cloud_env.clients().firebase_app
    # Act / Assert: a fresh token verifies, with check_revoked
    caller = verify_caller(user.headers(), app)
    assert caller.uid == user.uid
    assert caller.email == user.email
    # Revocation is second-granular: the token must be older than the revocation.
    time.sleep(1.1)
    admin_auth.revoke_refresh_tokens(user.uid, app=app)
    with pytest.raises(AuthError) as revoked:
        verify_caller(user.headers(), app)
    assert revoked.value.code == "revoked_token"


@pytest.mark.parametrize("headers,code", [
    ({}, "missing_token"),
    ({"Authorization": "Basic abc"}, "missing_token"),
    ({"Authorization": "Bearer not-a-jwt"}, "invalid_token"),
])
def test_bad_tokens_are_refused(cloud_env, headers, code):
    from pacs.auth import verify_caller
    from pacs.errors import AuthError

    with pytest.raises(AuthError) as err:
        verify_caller(headers, cloud_env.clients().firebase_app)
    assert err.value.code == code


def test_firestore_rules_deny_by_default(clean_firestore):
    # Arrange: a profile written by the admin client (rules do not apply to it)
    cloud = clean_firestore
    owner, other = cloud.create_user(), cloud.create_user()
    cloud.clients().firestore.collection("users").document(owner.uid).set({"owner": owner.uid})
    cloud.clients().firestore.collection("unlisted").document("x").set({"owner": owner.uid})
    # Act / Assert
    assert_owner_reads_only(cloud, f"users/{owner.uid}", owner, other)
    # A collection no rule names is closed even to the document's owner.
    assert_reads(cloud, "unlisted/x", denied=(owner,))


def test_function_refuses_to_start_deployed_with_emulator_variables(tmp_path):
    # Arrange: what a misconfigured deploy would look like
    env = {**os.environ, "K_SERVICE": "studies", "GOOGLE_CLOUD_PROJECT": "real-project",
           "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099",
           "PYTHONPATH": str(config.ROOT / "functions")}
    # Act
    proc = subprocess.run(
        [sys.executable, "-m", "functions_framework", "--target", "studies",
         "--source", str(config.ROOT / "functions" / "studies" / "main.py"), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60)
    # Assert
    assert proc.returncode != 0
    assert "refusing to start" in proc.stderr + proc.stdout
