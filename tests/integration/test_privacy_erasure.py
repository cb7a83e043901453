"""Export and erasure through the real functions on the local cloud, checked against an
inventory of everything the emulators hold, not against the registry.

The main scenario seeds two users through the real paths (ingest of real DICOM files,
search, viewer links, shares, consent, analytics, restriction, rectification, a study
deletion, an export), then:

- lists every collection group, every object of the three buckets and every Auth user, and
  fails on any location the registry does not cover, or any item naming user A that the
  registry's ``find`` for A does not return;
- checks A's export holds all of A (DICOM checksums as recorded at ingest) and nothing of B;
- erases A and fails if any document, object name or object byte still holds A's uid,
  email, patient name or PatientID, while B is untouched, A's old signed URLs, share link
  and token are dead, and A's Auth user is gone; an upload arriving afterwards writes
  nothing.

Then: a crash halfway through an erasure and a retry through the job end with nothing left;
one failing location never stops the others.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from dataclasses import replace

import pydicom
import pytest
import requests
from pacs.privacy import erasure, personal_data
from pacs.privacy import requests as privacy_requests

from tests.ingest_helpers import (
    instance_docs,
    put_session,
    start_upload,
    upload_bytes,
    wait_final,
    wait_settled,
    zip_bytes,
)
from tests.integration.test_ingest_faults import make_instances
from tests.localcloud_fixture import LocalCloud, User, wait_for
from tests.privacy_helpers import (
    all_auth_users,
    all_documents,
    all_objects,
    call,
    clear_buckets,
    create_profile,
    fetch,
    mentions,
    ok,
    seed_study,
    wait_receipt,
    wait_request,
    wipe,
)

pytestmark = pytest.mark.localcloud


@pytest.fixture(scope="module", autouse=True)
def _leave_the_project_empty(cloud):
    yield
    wipe(cloud)


def _sign_link(cloud, route, user=None, body=None, method="POST"):
    return call(cloud, route, user, method, body, function="sign-link")


def _studies(cloud, user, **params):
    resp = requests.get(cloud.urls["studies"] + "/", params=params, headers=user.headers(),
                        timeout=60)
    return ok(resp)["studies"]


def _registry_finds(cloud: LocalCloud, uid: str) -> tuple[set[str], set[tuple[str, str]], bool]:
    """What the registry's ``find`` returns for ``uid``: document paths, objects, Auth user."""
    subject = personal_data.Subject(cloud.clients(), uid)
    paths, objects, auth_user = set(), set(), False
    for location in personal_data.LOCATIONS:
        for item in location.find(subject):
            if location.kind == "firestore":
                paths.add(item.reference.path)
            elif location.kind == "storage":
                objects.add((item.bucket.name, item.name))
            else:
                auth_user = True
    return paths, objects, auth_user


def _assert_registry_covers(cloud: LocalCloud, user: User, needles: list[str]) -> None:
    docs, objects, users = all_documents(cloud), all_objects(cloud), all_auth_users(cloud)
    # Every location the emulators hold is one the registry knows.
    unknown_groups = {d.group for d in docs} - personal_data.collection_groups()
    assert not unknown_groups, f"collections not in the registry: {unknown_groups}"
    patterns = personal_data.storage_prefix_patterns(cloud.settings())
    unknown_objects = [(o.bucket, o.name) for o in objects
                       if not any(b == o.bucket and rx.match(o.name) for b, rx, _ in patterns)]
    assert not unknown_objects, f"objects outside every registry prefix: {unknown_objects}"
    # Everything that names the user is found by the registry for that user.
    paths, found_objects, auth_found = _registry_finds(cloud, user.uid)
    naming = [d.path for d in docs if mentions(needles, d.text + d.path)]
    assert naming, "the scenario wrote nothing about the user?"
    missed = [p for p in naming if p not in paths]
    assert not missed, f"documents naming the user that the registry misses: {missed}"
    naming_objects = [(o.bucket, o.name) for o in objects
                      if mentions(needles, o.name) or mentions(needles, o.data)]
    missed_objects = [o for o in naming_objects if o not in found_objects]
    assert not missed_objects, f"objects naming the user that the registry misses: {missed_objects}"
    assert any(u.uid == user.uid for u in users) and auth_found


def _check_export(cloud, user, request, needles_self, needles_other) -> None:
    result = request["result"]
    data = fetch(result["download_url"]).content
    assert len(data) == result["size"] and hashlib.sha256(data).hexdigest() == result["sha256"]
    recorded = {d["object"]: d["sha256"] for d in instance_docs(cloud, user.uid)}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        for required in ("README.txt", "manifest.json", "checksums.sha256", "account/auth.json"):
            assert required in names
        dicoms = [n for n in names if n.startswith("dicom/")]
        assert len(dicoms) == len(recorded) == 3
        sums = dict(reversed(line.split("  ", 1))
                    for line in zf.read("checksums.sha256").decode().splitlines())
        for name in dicoms:
            content = zf.read(name)
            sha = hashlib.sha256(content).hexdigest()
            _, study, instance = name.split("/")
            assert sha == sums[name] == recorded[f"{user.uid}/{study}/{instance}"]
            assert pydicom.dcmread(io.BytesIO(content)).PatientID == needles_self[2]
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["integrity"]["matched"] == 3
        assert manifest["integrity"]["mismatched"] == manifest["integrity"]["unrecorded"] == []
        assert json.loads(zf.read("account/auth.json"))["email"] == user.email

        def lines(location):
            return [json.loads(x) for x in zf.read(f"firestore/{location}.jsonl").splitlines()]

        assert len(lines("profile")) == 1 and len(lines("studies")) == 1
        assert len(lines("instances")) == 3 and len(lines("shares")) == 1
        assert len(lines("consent_ledger")) == 1 and len(lines("deletions")) == 1
        assert {r["data"]["kind"] for r in lines("access")} >= {"manifest", "share_used"}
        assert request["id"] in {r["path"].split("/")[-1] for r in lines("privacy_requests")}
        assert all("token_hash" not in r["data"] for r in lines("shares"))
        everything = b"".join(zf.read(n) for n in names)
    assert mentions(needles_self, everything) == needles_self
    assert mentions(needles_other, everything) == [], "another user's data in the export"


@pytest.fixture
def empty_cloud(cloud_env, clean_firestore):
    clear_buckets(cloud_env)
    return cloud_env


def test_export_and_erasure_cover_every_location_and_nothing_else(empty_cloud):
    cloud = empty_cloud
    tag = uuid.uuid4().hex[:8]
    a, b = cloud.create_user(), cloud.create_user()
    name_a, pid_a = f"Zyxa{tag}^Quokka", f"PIDA{tag}"
    name_b, pid_b = f"Zyxb{tag}^Wombat", f"PIDB{tag}"
    needles_a, needles_b = [a.uid, a.email, pid_a, name_a], [b.uid, b.email, pid_b, name_b]
    create_profile(cloud, a, "Alice Example")
    create_profile(cloud, b, "Bob Example")
    # Upload: real files through the real ingest path (two studies for A, one for B).
    uploads = [
        upload_bytes(cloud, a, zip_bytes(make_instances(3, patient_name=name_a,
                                                        patient_id=pid_a)), "a.zip",
                     "application/zip"),
        upload_bytes(cloud, a, make_instances(1, patient_name=name_a, patient_id=pid_a)[0][1],
                     "a2.dcm", "application/dicom"),
        upload_bytes(cloud, b, zip_bytes(make_instances(2, patient_name=name_b,
                                                        patient_id=pid_b)), "b.zip",
                     "application/zip"),
    ]
    for upload_id in uploads:
        assert wait_final(cloud, upload_id, timeout=240)["status"] == "complete"
    wait_settled(cloud, a.uid, 4, timeout=240)
    wait_settled(cloud, b.uid, 2, timeout=240)
    # Search, and a study deletion (its record stays with the owner).
    studies = _studies(cloud, a, patient_id=pid_a)
    assert len(studies) == 2
    by_count = sorted(studies, key=lambda s: s.get("instance_count") or 0)
    kept_study, deleted_study = by_count[-1]["id"], by_count[0]["id"]
    ok(requests.delete(f"{cloud.urls['studies']}/{deleted_study}", headers=a.headers(),
                       timeout=120))
    [study_b] = [s["id"] for s in _studies(cloud, b)]
    # Links, shares, access records.
    manifest = ok(_sign_link(cloud, "manifest", a, {"study_id": kept_study}))
    series_id = manifest["series"][0]["series_id"]
    page = ok(_sign_link(cloud, "series", a, {"study_id": kept_study, "series_id": series_id}))
    old_urls = [page["instances"][0]["url"]]
    if manifest["series"][0]["preview"].get("url"):
        old_urls.append(manifest["series"][0]["preview"]["url"])
    share_a = ok(_sign_link(cloud, "shares", a, {"study_id": kept_study}))
    ok(_sign_link(cloud, "share/manifest", body={"token": share_a["token"]}))
    share_b = ok(_sign_link(cloud, "shares", b, {"study_id": study_b}))
    ok(_sign_link(cloud, "share/manifest", body={"token": share_b["token"]}))
    # Consent and analytics, restriction and its lifting, rectification.
    ok(call(cloud, "consent", a, body={"analytics": True}))
    ok(call(cloud, "analytics", a, body={"event": "study_opened", "study_id": kept_study}))
    ok(call(cloud, "restrict", a, body={"study_id": kept_study}))
    ok(call(cloud, "restrict", a, body={"study_id": kept_study, "restricted": False}))
    ok(call(cloud, "profile", a, "PATCH", {"display_name": "Alice Corrected"}))
    # An upload session opened before the erasure, whose bytes arrive after it.
    late = make_instances(1, patient_name=name_a, patient_id=pid_a)[0][1]
    late_session = ok(start_upload(cloud, a, "late.dcm", len(late), "application/dicom"))
    # Export A.
    fresh_a = cloud.sign_in(a.email, a.password)
    request = ok(call(cloud, "requests", fresh_a, body={"type": "export"}), 202)["request"]
    exported = wait_request(cloud, fresh_a, request["id"])
    assert exported["status"] == "completed", exported
    old_urls.append(exported["result"]["download_url"])
    _check_export(cloud, a, exported, needles_a, needles_b)

    # The registry covers every location, and finds everything that names A.
    _assert_registry_covers(cloud, a, needles_a)
    b_docs = sorted(d.path for d in all_documents(cloud) if mentions(needles_b, d.text + d.path))
    b_objects = sorted((o.bucket, o.name, hashlib.sha256(o.data).hexdigest())
                       for o in all_objects(cloud)
                       if mentions(needles_b, o.name) or mentions(needles_b, o.data))
    assert b_docs and b_objects
    for url in old_urls:
        assert fetch(url).status_code == 200

    # Erase A.
    fresh_a = cloud.sign_in(a.email, a.password)
    answer = ok(call(cloud, "requests", fresh_a, body={"type": "erasure"}), 202)
    receipt_id = answer["request"]["receipt_id"]
    receipt = wait_receipt(cloud, receipt_id)
    put_session(late_session["session_url"], late)  # arrives after the erasure
    wait_for(lambda: any(line.get("event") == "upload_refused" and line.get("code") == "erased"
                         and line.get("upload_id") == late_session["upload_id"]
                         for line in cloud.log_lines("on-upload-finalized")),
             timeout=120, what="the late upload to be refused")

    # Nothing anywhere names A.
    docs, objects = all_documents(cloud), all_objects(cloud)
    left = [d.path for d in docs if mentions(needles_a, d.text + d.path)]
    assert not left, f"documents still naming A: {left}"
    left_objects = [(o.bucket, o.name) for o in objects
                    if mentions(needles_a, o.name) or mentions(needles_a, o.data)]
    assert not left_objects, f"objects still naming A: {left_objects}"
    users = all_auth_users(cloud)
    assert all(u.uid != a.uid and u.email != a.email for u in users)
    paths, found, auth_found = _registry_finds(cloud, a.uid)
    assert not paths and not found and not auth_found
    # B untouched.
    assert sorted(d.path for d in docs if mentions(needles_b, d.text + d.path)) == b_docs
    assert sorted((o.bucket, o.name, hashlib.sha256(o.data).hexdigest()) for o in objects
                  if mentions(needles_b, o.name) or mentions(needles_b, o.data)) == b_objects
    assert any(u.uid == b.uid for u in users)
    ok(_sign_link(cloud, "share/manifest", body={"token": share_b["token"]}))
    # A's old URLs, share link and token are dead.
    for url in old_urls:
        assert fetch(url).status_code == 404
    assert _sign_link(cloud, "share/manifest", body={"token": share_a["token"]}).status_code == 404
    assert call(cloud, "requests", fresh_a, "GET").status_code == 401
    # The receipt: what, how many, when; nothing that names A.
    assert receipt["status"] == "completed" and receipt["failed"] == []
    assert set(receipt["locations"].values()) == {"done"}
    deleted = receipt["deleted"]
    assert deleted["instance_objects"] == 3 and deleted["instances"] == 3
    assert deleted["studies"] == 1 and deleted["shares"] == 1 and deleted["auth_user"] == 1
    assert deleted["exports"] == 1 and deleted["deletions"] == 1 and deleted["profile"] == 1
    assert receipt["residual_copies_expire_by"] > receipt["completed_at"]
    assert not mentions(needles_a, json.dumps(receipt))
    assert receipt_id not in (a.uid, a.email)


def _crash(subject):
    raise Crash("the worker died here")


class Crash(BaseException):
    """Not an Exception: nothing in the erasure catches it, like a killed process."""


def _seed_user(cloud: LocalCloud, pid: str) -> tuple[User, str]:
    user = cloud.create_user()
    create_profile(cloud, user)
    study = seed_study(cloud, user.uid, patient_id=pid)
    ok(_sign_link(cloud, "shares", user, {"study_id": study.study_key}))
    ok(_sign_link(cloud, "manifest", user, {"study_id": study.study_key}))
    ok(call(cloud, "consent", user, body={"analytics": True}))
    return user, study.study_key


def _nothing_left(cloud: LocalCloud, needles: list[str]) -> None:
    docs = [d.path for d in all_documents(cloud) if mentions(needles, d.text + d.path)]
    objects = [o.name for o in all_objects(cloud)
               if mentions(needles, o.name) or mentions(needles, o.data)]
    assert docs == [] and objects == []


def test_erasure_crashing_halfway_then_retried_ends_with_nothing_left(empty_cloud):
    from firebase_admin import auth

    cloud = empty_cloud
    pid = f"PIDC{uuid.uuid4().hex[:8]}"
    user, study = _seed_user(cloud, pid)
    other, _ = _seed_user(cloud, f"PIDO{uuid.uuid4().hex[:8]}")
    clients, settings = cloud.clients(), cloud.settings()
    fs = clients.firestore
    request_id, _ = privacy_requests.create(fs, user.uid, "erasure", settings, privacy_requests.utc_now(),
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
    user, study = _seed_user(cloud, pid)
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
    wait_for(lambda: any(line.get("event") == "upload_refused" and line.get("code") == "erased"
                         and line.get("upload_id") == session["upload_id"]
                         for line in cloud.log_lines("on-upload-finalized")),
             timeout=120, what="the upload to be refused")
    upload = clients.firestore.collection("uploads").document(session["upload_id"])
    wait_for(lambda: not list(clients.storage.list_blobs(cloud.buckets["uploads"],
                                                         prefix=f"{user.uid}/")),
             what="the object to be deleted")
    assert upload.get().to_dict()["status"] == "pending"  # nothing written about it
    assert list(upload.collection("files").stream()) == []
    assert list(clients.storage.list_blobs(cloud.buckets["instances"], prefix=f"{user.uid}/")) == []


def test_the_guard_fails_on_data_the_registry_does_not_know(empty_cloud):
    """The inventory check is not vacuous: a new collection, a stray object, or a document
    in a known collection that the registry's query would not find all fail it."""
    cloud = empty_cloud
    pid = f"PIDG{uuid.uuid4().hex[:8]}"
    user, _ = _seed_user(cloud, pid)
    needles = [user.uid, user.email, pid]
    _assert_registry_covers(cloud, user, needles)  # clean to begin with
    fs, storage = cloud.clients().firestore, cloud.clients().storage
    stray_doc = fs.collection("notes").document("n1")
    stray_doc.set({"owner": user.uid})
    with pytest.raises(AssertionError, match="collections not in the registry"):
        _assert_registry_covers(cloud, user, needles)
    stray_doc.delete()
    stray = storage.bucket(cloud.buckets["derived"]).blob(f"thumbnails/{user.uid}/x.png")
    stray.upload_from_string(b"x")
    with pytest.raises(AssertionError, match="objects outside every registry prefix"):
        _assert_registry_covers(cloud, user, needles)
    stray.delete()
    hidden = fs.collection("uploads").document("u1").collection("files").document("000000")
    hidden.set({"note": f"about {pid}"})  # no owner field: the registry's query misses it
    with pytest.raises(AssertionError, match="registry misses"):
        _assert_registry_covers(cloud, user, needles)
    hidden.delete()
    _assert_registry_covers(cloud, user, needles)
