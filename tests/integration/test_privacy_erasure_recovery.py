"""Erasure that does not go smoothly, through the real functions on the local cloud,
checked against the inventory of everything the emulators hold: a crash halfway through an
erasure and a retry through the job end with nothing left; one failing location never stops
the others (and the erasure completes once it works again); an upload arriving after the
erasure marker writes nothing.

The export and erasure of a full scenario: ``test_privacy_erasure.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from pacs.privacy import erasure, personal_data
from pacs.privacy import requests as privacy_requests

from tests.ingest_helpers import make_instances, put_session, start_upload
from tests.localcloud_fixture import LocalCloud, wait_for
from tests.privacy_helpers import (
    all_documents,
    all_objects,
    mentions,
    ok,
    seed_user,
    wait_receipt,
    wait_upload_refused,
)

pytestmark = [pytest.mark.localcloud, pytest.mark.usefixtures("leave_project_empty")]


def _crash(subject):
    raise Crash("the worker died here")


class Crash(BaseException):
    """Not an Exception: nothing in the erasure catches it, like a killed process."""


def _nothing_left(cloud: LocalCloud, needles: list[str]) -> None:
    docs = [d.path for d in all_documents(cloud) if mentions(needles, d.text + d.path)]
    objects = [o.name for o in all_objects(cloud)
               if mentions(needles, o.name) or mentions(needles, o.data)]
    assert docs == [] and objects == []


def test_erasure_crashing_halfway_then_retried_ends_with_nothing_left(empty_cloud):
    from firebase_admin import auth

    cloud = empty_cloud
    pid = f"PIDC{uuid.uuid4().hex[:8]}"
    user, study = seed_user(cloud, pid)
    other, _ = seed_user(cloud, f"PIDO{uuid.uuid4().hex[:8]}")
    clients, settings = cloud.clients(), cloud.settings()
    fs = clients.firestore
    request_id, _ = privacy_requests.create(fs, user.uid, "erasure", settings,
                                            privacy_requests.utc_now(),
                                            receipt_id=erasure.receipt_id(settings, user.uid))
    crashing = tuple(replace(loc, delete=_crash) if loc.name == "studies" else loc
                     for loc in personal_data.LOCATIONS)
    # Act 1: the worker dies halfway.
    with pytest.raises(Crash):
        erasure.erase(clients, user.uid, request_id=request_id, locations=crashing)
    marker = erasure.marker_ref(fs, settings, user.uid).get().to_dict()
    assert marker["status"] == "in_progress"
    assert marker["steps"]["instance_objects"] == "done" and "studies" not in marker["steps"]
    assert fs.collection("studies").document(study).get().exists  # not reached
    assert list(clients.storage.list_blobs(cloud.buckets["instances"], prefix=f"{user.uid}/")) == []
    assert auth.get_user(user.uid, app=clients.firebase_app).disabled is True
    request = fs.collection("privacy_requests").document(request_id).get().to_dict()
    assert request["status"] == "in_progress" and request["progress"]["shares"] == "done"
    # Act 2: the retry (what Pub/Sub redelivery or resume_stalled does) through the job.
    privacy_requests.publish_job(clients, request_id, user.uid, "erasure")
    receipt = wait_receipt(cloud, erasure.receipt_id(settings, user.uid))
    # Assert
    assert receipt["attempts"] == 2 and receipt["locations"]["studies"] == "done"
    _nothing_left(cloud, [user.uid, user.email, pid])
    with pytest.raises(auth.UserNotFoundError):
        auth.get_user(user.uid, app=clients.firebase_app)
    assert auth.get_user(other.uid, app=clients.firebase_app).disabled is False
    # Idempotent: once more changes nothing and fails nothing.
    again = erasure.erase(clients, user.uid)
    assert again["status"] == "completed" and again["deleted"] == receipt["deleted"]


def test_one_failing_location_never_stops_the_others(empty_cloud):
    cloud = empty_cloud
    pid = f"PIDF{uuid.uuid4().hex[:8]}"
    user, study = seed_user(cloud, pid)
    clients, settings = cloud.clients(), cloud.settings()
    fs = clients.firestore
    # Let the seeded objects' finalize events be handled first: once the erasure marker
    # exists, the indexer itself deletes late-arriving objects, which this test must not see.
    objects = list(clients.storage.list_blobs(cloud.buckets["instances"], prefix=f"{user.uid}/"))
    wait_for(lambda: sum(1 for line in cloud.log_lines("on-instance-finalized")
                         if line.get("event") == "instance_indexed"
                         and line.get("uid") == user.uid) >= len(objects),
             timeout=60, what="seeded objects to be indexed")
    # The retention job's reconcile cursor happens to stop at one of the user's objects.
    cursor = fs.collection("retention_state").document("reconcile")
    cursor.set({"phase": "instances", "cursor": f"{user.uid}/{study}/x.dcm"})

    def broken(subject):
        raise RuntimeError("storage unavailable")

    failing = tuple(replace(loc, delete=broken) if loc.name == "instance_objects" else loc
                    for loc in personal_data.LOCATIONS)
    with pytest.raises(erasure.ErasureIncomplete):
        erasure.erase(clients, user.uid, locations=failing)
    marker = erasure.marker_ref(fs, settings, user.uid).get().to_dict()
    assert marker["failed"] == ["instance_objects"] and marker["status"] == "in_progress"
    assert all(state == "done" for name, state in marker["steps"].items()
               if name not in ("instance_objects", personal_data.REQUESTS))
    assert not fs.collection("studies").document(study).get().exists  # later ones ran
    assert not fs.collection("users").document(user.uid).get().exists
    assert list(clients.storage.list_blobs(cloud.buckets["instances"], prefix=f"{user.uid}/"))
    receipt = erasure.erase(clients, user.uid)
    assert receipt["status"] == "completed" and receipt["failed"] == []
    _nothing_left(cloud, [user.uid, user.email, pid])
    assert cursor.get().to_dict() == {"phase": "instances", "cursor": None}


def test_upload_arriving_after_the_marker_writes_nothing(empty_cloud):
    cloud = empty_cloud
    user = cloud.create_user()
    data = make_instances(1, patient_id=f"PIDL{uuid.uuid4().hex[:8]}")[0][1]
    session = ok(start_upload(cloud, user, "late.dcm", len(data), "application/dicom"))
    clients, settings = cloud.clients(), cloud.settings()
    erasure.write_marker(clients.firestore, settings, user.uid, "user_request",
                         privacy_requests.utc_now())
    put_session(session["session_url"], data)
    wait_upload_refused(cloud, session["upload_id"], "the upload to be refused")
    upload = clients.firestore.collection("uploads").document(session["upload_id"])
    wait_for(lambda: not list(clients.storage.list_blobs(cloud.buckets["uploads"],
                                                         prefix=f"{user.uid}/")),
             what="the object to be deleted")
    assert upload.get().to_dict()["status"] == "pending"  # nothing written about it
    assert list(upload.collection("files").stream()) == []
    assert list(clients.storage.list_blobs(cloud.buckets["instances"], prefix=f"{user.uid}/")) == []
