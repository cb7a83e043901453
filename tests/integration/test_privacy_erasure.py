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

The inventory check itself is shown not to be vacuous. How erasure recovers from crashes
and failing locations: ``test_privacy_erasure_recovery.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile

import pydicom
import pytest
import requests
from pacs.privacy import personal_data

from tests.ingest_helpers import (
    instance_docs,
    make_instances,
    put_session,
    start_upload,
    upload_bytes,
    wait_final,
    wait_settled,
    zip_bytes,
)
from tests.localcloud_fixture import LocalCloud, User
from tests.privacy_helpers import (
    all_auth_users,
    all_documents,
    all_objects,
    call,
    create_profile,
    mentions,
    ok,
    seed_user,
    sign_link,
    wait_receipt,
    wait_request,
    wait_upload_refused,
)
from tests.sign_link_helpers import fetch

pytestmark = [pytest.mark.localcloud, pytest.mark.usefixtures("leave_project_empty")]


def _studies(cloud, user, **params):
    resp = requests.post(cloud.urls["studies"] + "/search", json=params, headers=user.headers(),
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


def _check_export(cloud, user, request, download_url, needles_self, needles_other) -> None:
    result = request["result"]
    data = fetch(download_url).content
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
        assert len(lines("instances")) == 3 and len(lines("shares")) == 2  # one de-identified
        assert len(lines("consent_ledger")) == 1 and len(lines("deletions")) == 1
        assert {r["data"]["kind"] for r in lines("access")} >= {"manifest", "share_used"}
        assert request["id"] in {r["path"].split("/")[-1] for r in lines("privacy_requests")}
        assert all("token_hash" not in r["data"] for r in lines("shares"))
        everything = b"".join(zf.read(n) for n in names)
    assert mentions(needles_self, everything) == needles_self
    assert mentions(needles_other, everything) == [], "another user's data in the export"


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
    manifest = ok(sign_link(cloud, "manifest", a, {"study_id": kept_study}))
    series_id = manifest["series"][0]["series_id"]
    page = ok(sign_link(cloud, "series", a, {"study_id": kept_study, "series_id": series_id}))
    old_urls = [page["instances"][0]["url"]]
    if manifest["series"][0]["preview"].get("url"):
        old_urls.append(manifest["series"][0]["preview"]["url"])
    share_a = ok(sign_link(cloud, "shares", a, {"study_id": kept_study}))
    ok(sign_link(cloud, "share/manifest", body={"token": share_a["token"]}))
    # A de-identified share: its copy (derived bucket, share_copies documents) goes too.
    share_c = ok(sign_link(cloud, "shares", a, {"study_id": kept_study, "deidentified": True}))
    assert share_c["copied"] == 3
    # The copy's objects: its 3 instances, and per copy series its DICOMweb metadata, frame
    # index (pacs.links.copy_metadata) and preview (pacs.links.copy_previews).
    copy_objects = len(list(cloud.clients().storage.list_blobs(
        cloud.buckets["derived"], prefix=f"shares/{a.uid}/{share_c['share_id']}/")))
    assert copy_objects >= 6 and (copy_objects - 3) % 3 == 0
    share_b = ok(sign_link(cloud, "shares", b, {"study_id": study_b}))
    ok(sign_link(cloud, "share/manifest", body={"token": share_b["token"]}))
    # API keys (created on a fresh sign-in) and their use through DICOMweb: the key documents
    # and one access record per key and day.
    for user in (a, b):
        fresh = cloud.sign_in(user.email, user.password)
        key = ok(call(cloud, "keys", fresh, body={"name": "nightly", "scope": "read"}), 201)
        ok(requests.get(f"{cloud.urls['dicomweb']}/studies", timeout=60,
                        headers={"Authorization": f"Bearer {key['key']}"}))
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
    # No link is stored: POST /requests/{id}/download mints one (test_privacy_hardening).
    link = ok(call(cloud, f"requests/{request['id']}/download", fresh_a))["download_url"]
    old_urls.append(link)
    _check_export(cloud, a, exported, link, needles_a, needles_b)

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
    wait_upload_refused(cloud, late_session["upload_id"], "the late upload to be refused")

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
    ok(sign_link(cloud, "share/manifest", body={"token": share_b["token"]}))
    # A's old URLs, share link and token are dead.
    for url in old_urls:
        assert fetch(url).status_code == 404
    assert sign_link(cloud, "share/manifest", body={"token": share_a["token"]}).status_code == 404
    assert call(cloud, "requests", fresh_a, "GET").status_code == 401
    # The receipt: what, how many, when; nothing that names A.
    assert receipt["status"] == "completed" and receipt["failed"] == []
    assert set(receipt["locations"].values()) == {"done"}
    deleted = receipt["deleted"]
    assert deleted["instance_objects"] == 3 and deleted["instances"] == 3
    assert deleted["studies"] == 1 and deleted["shares"] == 2 and deleted["auth_user"] == 1
    assert deleted["share_copy_objects"] == copy_objects and deleted["share_copies"] == 3
    assert deleted["exports"] == 1 and deleted["deletions"] == 1 and deleted["profile"] == 1
    assert receipt["residual_copies_expire_by"] > receipt["completed_at"]
    assert not mentions(needles_a, json.dumps(receipt))
    assert receipt_id not in (a.uid, a.email)


def test_the_guard_fails_on_data_the_registry_does_not_know(empty_cloud):
    """The inventory check is not vacuous: a new collection, a stray object, or a document
    in a known collection that the registry's query would not find all fail it."""
    cloud = empty_cloud
    pid = f"PIDG{uuid.uuid4().hex[:8]}"
    user, _ = seed_user(cloud, pid)
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


def test_the_receipt_says_completed_only_once_every_location_is_done(cloud):
    # Arrange: the erasure's last location (the privacy requests) reads the receipt as the
    # user could read it at that moment, then deletes as usual
    import dataclasses

    from pacs.privacy import erasure

    clients = cloud.clients()
    user = cloud.create_user()
    last = next(loc for loc in personal_data.LOCATIONS if loc.name == personal_data.REQUESTS)
    marker = erasure.marker_ref(clients.firestore, clients.settings, user.uid)
    seen: list[str | None] = []

    def delete(subject):
        seen.append((marker.get().to_dict() or {}).get("status"))
        return last.delete(subject)

    locations = [dataclasses.replace(loc, delete=delete) if loc is last else loc
                 for loc in personal_data.LOCATIONS]
    # Act
    receipt = erasure.erase(clients, user.uid, locations=locations)
    # Assert: not "completed" while a location was still to run (it was, on the old code,
    # and the receipt then listed the requests as "pending"); completed with all done after
    assert seen == [erasure.IN_PROGRESS]
    assert receipt["status"] == "completed"
    assert set(receipt["locations"].values()) == {"done"}
