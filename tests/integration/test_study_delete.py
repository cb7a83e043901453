"""Deleting one study: afterwards the emulators hold nothing of it (every object of the three
buckets, every document of every collection is listed), the user's other study and another
user's are untouched; a failing location does not stop the others, a crash halfway and a
retry finish the job, and a repeated delete is harmless. Also end to end: a real upload,
found by search, listed, shown and deleted with the CLI."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs import ids
from pacs.errors import NotFound, TransientError
from pacs.indexing import catalog, search_keys
from pacs.studies import deletion
from pydicom.data import get_testdata_file

from localcloud import config
from tests.ingest_helpers import upload_bytes, wait_final, wait_settled
from tests.localcloud_fixture import LocalCloud, User, wait_for
from tests.rules_matrix import assert_reads

pytestmark = pytest.mark.localcloud


@dataclass
class Seeded:
    uid: str
    key: str
    study_uid: str
    objects: dict[str, set[str]] = field(default_factory=lambda: {
        "uploads": set(), "instances": set(), "derived": set()})
    uploads: list[str] = field(default_factory=list)


RAW = b"raw upload bytes"


def _upload(cloud: LocalCloud, uid: str, results: list[dict[str, Any]],
            status: str = "complete") -> str:
    """An upload record, its per-file results and, once final, its raw object (record
    first: the finalize event then sees a final upload and leaves the object alone)."""
    fs = cloud.clients().firestore
    upload_id = secrets.token_hex(16)
    name = ids.upload_object(uid, upload_id)
    ref = fs.collection("uploads").document(upload_id)
    ref.set({"owner": uid, "filename": "cd.zip", "size": len(RAW), "status": status,
             "object": name, "counts_toward_quota": True, "created_at": datetime.now(UTC)})
    if status == "complete":
        cloud.clients().storage.bucket(cloud.buckets["uploads"]).blob(name).upload_from_string(RAW)
    for index, result in enumerate(results + [{"status": "rejected", "reason": "not_dicom"}]):
        ref.collection("files").document(f"{index:06d}").set(
            {"owner": uid, "upload_id": upload_id, "index": index, "name": f"f{index}",
             **result})
    return upload_id


def seed_study(cloud: LocalCloud, user: User, patient: str, series_count: int = 2,
               instances: int = 3, study_uid: str | None = None) -> Seeded:
    """A study as ingest, settle, sharing and viewing would leave it, written directly."""
    fs, storage = cloud.clients().firestore, cloud.clients().storage
    key = cloud.settings().hash_key
    uid, now = user.uid, datetime.now(UTC)
    study_uid = study_uid or f"1.2.826.0.1.{secrets.randbelow(10**9)}"
    fields = {"PatientName": patient, "PatientID": "P-1", "StudyInstanceUID": study_uid,
              "StudyDate": "20240131", "StudyTime": "101500", "AccessionNumber": "A1",
              "StudyDescription": "CT Chest"}
    study = ids.study_key(key, uid, study_uid)
    seeded = Seeded(uid, study, study_uid)
    doc = catalog.study_document(fields, uid, now)
    doc.update(modalities=["CT"], search=search_keys.with_modalities(doc["search"], ["CT"]))
    catalog.study_ref(fs, study).set(doc)
    results = []
    for s in range(series_count):
        series_fields = {"SeriesInstanceUID": f"{study_uid}.{s}", "Modality": "CT",
                         "SeriesNumber": s + 1}
        series = ids.series_key(key, uid, series_fields["SeriesInstanceUID"])
        preview = ids.preview_object(uid, study, series)
        storage.bucket(cloud.buckets["derived"]).blob(preview).upload_from_string(b"\x89PNG")
        seeded.objects["derived"].add(preview)
        series_doc = catalog.series_document(series_fields, uid, study, now)
        series_doc["preview"] = {"status": "ready", "object": preview}
        catalog.series_ref(fs, study, series).set(series_doc)
        for i in range(instances):
            instance = ids.instance_key(key, uid, f"{study_uid}.{s}.{i}")
            name = ids.instance_object(uid, study, instance)
            # Not DICOM: the indexer reads it, finds no header and writes nothing.
            storage.bucket(cloud.buckets["instances"]).blob(name).upload_from_string(
                b"not dicom " + name.encode())
            seeded.objects["instances"].add(name)
            catalog.instance_ref(fs, study, series, instance).set(
                {"owner": uid, "study_key": study, "series_key": series, "object": name})
            results.append({"status": "stored", "study_key": study, "series_key": series,
                            "instance_key": instance})
    upload_id = _upload(cloud, uid, results)
    seeded.uploads.append(upload_id)
    seeded.objects["uploads"].add(ids.upload_object(uid, upload_id))
    fs.collection("shares").document(secrets.token_hex(10)).set(
        {"owner": uid, "study_key": study, "token_hash": "0" * 64, "views": 0})
    for kind in ("manifest", "share_created"):
        fs.collection("access").add({"owner": uid, "study_key": study, "kind": kind,
                                     "at": now})
    return seeded


def all_documents(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    """Every document of the test project (walking every collection and subcollection)."""
    out: dict[str, dict[str, Any]] = {}

    def walk(collections):
        for collection in collections:
            for ref in collection.list_documents():
                snap = ref.get()
                if snap.exists:
                    out[ref.path] = snap.to_dict()
                walk(ref.collections())

    walk(cloud.clients().firestore.collections())
    return out


def all_objects(cloud: LocalCloud) -> dict[str, set[str]]:
    storage = cloud.clients().storage
    return {role: {b.name for b in storage.list_blobs(bucket)}
            for role, bucket in cloud.buckets.items()}


def mentions(value: Any, needle: str) -> bool:
    return needle in json.dumps(value, default=str, ensure_ascii=False)


def deletion_record(cloud: LocalCloud, uid: str, study: str) -> dict[str, Any]:
    doc_id = deletion.deletion_id(cloud.settings().hash_key, uid, study)
    return cloud.clients().firestore.collection("deletions").document(doc_id).get().to_dict()


def delete_http(cloud: LocalCloud, user: User, study: str) -> requests.Response:
    return requests.delete(f"{cloud.urls['studies']}/{study}", headers=user.headers(),
                           timeout=120)


def assert_gone(cloud: LocalCloud, seeded: Seeded, patient: str) -> None:
    """Nothing of the study in any bucket or document, except the owner's deletion record."""
    record_path = "deletions/" + deletion.deletion_id(cloud.settings().hash_key,
                                                          seeded.uid, seeded.key)
    for path, doc in all_documents(cloud).items():
        if path == record_path:
            continue
        assert seeded.key not in path and not mentions(doc, seeded.key), path
        assert not mentions(doc, patient), path
    for role, names in all_objects(cloud).items():
        assert not any(seeded.key in n for n in names), role
        assert not names & seeded.objects[role], role


def test_delete_removes_everything_of_the_study_and_nothing_else(clean_firestore):
    cloud = clean_firestore
    alice, bob = cloud.create_user(), cloud.create_user()
    doomed = seed_study(cloud, alice, "Doomed^Xavier")
    kept = seed_study(cloud, alice, "Kept^Yvonne")
    # Bob has the same study (same UID): a different key, untouched.
    bobs = seed_study(cloud, bob, "Other^Bob", study_uid=doomed.study_uid)
    # One archive carried both of alice's studies.
    mixed = _upload(cloud, alice.uid, [
        {"status": "stored", "study_key": doomed.key}, {"status": "duplicate",
                                                        "study_key": doomed.key},
        {"status": "stored", "study_key": kept.key}])
    docs_before, objects_before = all_documents(cloud), all_objects(cloud)
    # Act: someone else, an unknown id and a malformed one get the same 404, and delete nothing
    answers = [delete_http(cloud, bob, doomed.key), delete_http(cloud, alice, "0" * 32),
               delete_http(cloud, alice, "not-a-key")]
    assert [r.status_code for r in answers] == [404, 404, 404]
    assert len({r.text for r in answers}) == 1
    assert all_documents(cloud) == docs_before
    resp = delete_http(cloud, alice, doomed.key)
    # Assert
    assert resp.status_code == 200, resp.text
    deletion = resp.json()["deletion"]
    assert deletion["status"] == "completed" and deletion["failed"] == []
    assert deletion["study_id"] == doomed.key and deletion["completed_at"]
    assert deletion["counts"] == {"study": 1, "shares": 1, "previews": 2, "instances": 6,
                                  "documents": 2 + 6, "uploads": 6 + 2, "access": 2,
                                  "download_links": 0}
    assert_gone(cloud, doomed, "Doomed^Xavier")
    # Alice's other study, Bob's study: every document and object as before.
    touched_uploads = {f"uploads/{u}" for u in doomed.uploads + [mixed]}
    docs_after, objects_after = all_documents(cloud), all_objects(cloud)
    for path, doc in docs_before.items():
        if doomed.key in path or mentions(doc, doomed.key) or path in touched_uploads:
            continue
        assert docs_after.get(path) == doc, path
    raw_objects = {ids.upload_object(alice.uid, u) for u in doomed.uploads + [mixed]}
    for role, names in objects_before.items():
        assert objects_after[role] == names - doomed.objects[role] - raw_objects, role
    assert bobs.key != doomed.key and bobs.objects["instances"] <= objects_after["instances"]
    # The upload records stay; their results no longer point at the study.
    fs = cloud.clients().firestore
    only = fs.collection("uploads").document(doomed.uploads[0]).get().to_dict()
    assert only["results_removed"] == 6 and only["counts_toward_quota"] is False
    both = fs.collection("uploads").document(mixed).get().to_dict()
    assert both["results_removed"] == 2 and both["counts_toward_quota"] is True
    results = [d.to_dict() for d in fs.collection("uploads").document(mixed)
               .collection("files").stream()]
    assert [r["study_key"] for r in results if r.get("study_key")] == [kept.key]
    # The owner reads the record under the rules; nobody else does.
    record_path = f"deletions/{deletion['id']}"
    assert_reads(cloud, record_path, allowed=(alice,), denied=(bob,))
    # Idempotent: again, the same record (nothing more deleted, one more attempt).
    again = delete_http(cloud, alice, doomed.key)
    assert again.status_code == 200
    assert again.json()["deletion"]["counts"] == deletion["counts"]
    assert again.json()["deletion"]["attempts"] == 2
    assert requests.get(f"{cloud.urls['studies']}/{doomed.key}", headers=alice.headers(),
                        timeout=30).status_code == 404
    assert requests.get(f"{cloud.urls['studies']}/{kept.key}", headers=alice.headers(),
                        timeout=30).status_code == 200


class Crash(BaseException):
    """Stands for the process dying: no ``except Exception`` catches it."""


def test_a_failing_location_does_not_stop_the_others_and_a_retry_finishes(clean_firestore):
    cloud = clean_firestore
    alice = cloud.create_user()
    doomed = seed_study(cloud, alice, "Flaky^Fred")
    kept = seed_study(cloud, alice, "Kept^Kim")

    def flaky(target):
        raise RuntimeError("storage said no")

    registry = list(deletion.DELETERS)
    registry.insert(2, deletion.Deleter("flaky", flaky))
    # Act: one location fails
    with pytest.raises(TransientError) as err:
        deletion.delete_study(cloud.clients(), alice.uid, doomed.key, deleters=registry)
    # Assert: the others ran; the record says what is left
    assert err.value.code == "deletion_incomplete"
    record = deletion_record(cloud, alice.uid, doomed.key)
    assert record["status"] == "in_progress" and record["failed"] == ["flaky"]
    assert record["steps"]["flaky"] == "failed" and record["steps"]["access"] == "done"
    assert_gone(cloud, doomed, "Flaky^Fred")  # flaky held nothing of it
    # The retry (the study document is gone by now) finds the record and completes.
    done = deletion.delete_study(cloud.clients(), alice.uid, doomed.key)
    assert done["status"] == "completed" and done["attempts"] == 2
    assert done["counts"]["instances"] == 6
    assert catalog.study_ref(cloud.clients().firestore, kept.key).get().exists


def test_a_crash_halfway_then_a_retry_completes(clean_firestore):
    cloud = clean_firestore
    alice, bob = cloud.create_user(), cloud.create_user()
    doomed = seed_study(cloud, alice, "Crash^Carl")
    kept = seed_study(cloud, alice, "Kept^Kate")

    def crash(target):
        raise Crash()

    registry = list(deletion.DELETERS)
    registry.insert(3, deletion.Deleter("power_cut", crash))
    with pytest.raises(Crash):
        deletion.delete_study(cloud.clients(), alice.uid, doomed.key, deleters=registry)
    record = deletion_record(cloud, alice.uid, doomed.key)
    assert record["status"] == "in_progress"
    assert set(record["steps"]) == {"study", "shares", "previews"}  # then the power went
    objects = all_objects(cloud)
    assert doomed.objects["instances"] <= objects["instances"]  # not reached yet
    # Someone else cannot resume it; the owner's retry (HTTP) finishes it.
    assert delete_http(cloud, bob, doomed.key).status_code == 404
    resp = delete_http(cloud, alice, doomed.key)
    assert resp.status_code == 200, resp.text
    assert resp.json()["deletion"]["status"] == "completed"
    assert_gone(cloud, doomed, "Crash^Carl")
    assert catalog.study_ref(cloud.clients().firestore, kept.key).get().exists
    assert kept.objects["instances"] <= all_objects(cloud)["instances"]


def test_an_upload_still_processing_holds_the_deletion_open(clean_firestore):
    cloud = clean_firestore
    alice = cloud.create_user()
    doomed = seed_study(cloud, alice, "Busy^Bea")
    busy = _upload(cloud, alice.uid, [{"status": "stored", "study_key": doomed.key}],
                   status="processing")
    resp = delete_http(cloud, alice, doomed.key)
    # Accepted, not failed: it finishes by itself once the upload is final.
    assert resp.status_code == 202, resp.text
    assert resp.json()["deletion"]["status"] == "in_progress"
    assert resp.json()["deletion"]["waiting_for"] == "upload"
    record = deletion_record(cloud, alice.uid, doomed.key)
    assert record["failed"] == [] and record["steps"]["uploads"] == "waiting"
    # Its results still point at the study (they are how the retry finds the upload).
    files = cloud.clients().firestore.collection("uploads").document(busy).collection("files")
    assert any(f.to_dict().get("study_key") == doomed.key for f in files.stream())
    cloud.clients().firestore.collection("uploads").document(busy).update({"status": "complete"})
    assert delete_http(cloud, alice, doomed.key).status_code == 200
    assert_gone(cloud, doomed, "Busy^Bea")


def test_a_study_uploaded_again_after_its_deletion_is_deleted_again(clean_firestore):
    cloud = clean_firestore
    alice = cloud.create_user()
    first = seed_study(cloud, alice, "Again^Ann")
    assert deletion.delete_study(cloud.clients(), alice.uid, first.key)["attempts"] == 1
    second = seed_study(cloud, alice, "Again^Ann", study_uid=first.study_uid)
    assert second.key == first.key
    done = deletion.delete_study(cloud.clients(), alice.uid, second.key)
    assert done["status"] == "completed" and done["attempts"] == 1
    assert done["counts"]["instances"] == 6
    assert_gone(cloud, second, "Again^Ann")
    with pytest.raises(NotFound):
        deletion.delete_study(cloud.clients(), cloud.create_user().uid, second.key)


# --- End to end: a real upload, search, get and delete with the CLI ----------------------

def test_cli_finds_shows_and_deletes_an_uploaded_study(cloud, tmp_path):
    user = cloud.create_user()
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    upload_id = upload_bytes(cloud, user, data, "ct.dcm", "application/dicom")
    assert wait_final(cloud, upload_id)["status"] == "complete"
    wait_settled(cloud, user.uid, 1)
    fs = cloud.clients().firestore
    [study_key] = wait_for(lambda: [s.id for s in fs.collection("studies").where(
        filter=FieldFilter("owner", "==", user.uid)).stream()
        if s.to_dict()["search"].get("modalities") == ["CT"] and s.to_dict().get("preview")],
        what="the study to settle")
    env = cloud.cli_env(tmp_path / "home")

    def pacs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pacs_cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=180, cwd=config.ROOT)

    def pacs_json(*args: str) -> dict[str, Any]:
        proc = pacs(*args, "--json")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return json.loads(proc.stdout)

    pacs_json("login", "--email", user.email, "--password", user.password)
    # Settle paired the modality with the name: name prefix + modality finds it.
    name = str(fs.collection("studies").document(study_key).get().get("PatientName"))
    prefix = search_keys.name_tokens(name)[0][:3].upper()
    listed = pacs_json("studies", "--name", prefix, "--modality", "ct", "--limit", "5")
    assert listed["ok"] and [s["id"] for s in listed["studies"]] == [study_key]
    assert listed["next_cursor"] is None and listed["studies"][0]["instance_count"] == 1
    assert pacs_json("studies", "--modality", "MR")["studies"] == []
    human = pacs("studies")
    assert human.returncode == 0 and study_key in human.stdout
    shown = pacs_json("studies", "get", study_key)
    assert shown["study"]["id"] == study_key and len(shown["series"]) == 1
    assert shown["series"][0]["Modality"] == "CT"
    bad = pacs("studies", "--date", "20240101", "--from", "20230101", "--json")
    assert bad.returncode != 0 and json.loads(bad.stdout)["ok"] is False
    bad = pacs("studies", "--date", "yesterday", "--json")
    assert bad.returncode != 0 and json.loads(bad.stdout)["error"] == "bad_date"
    # Delete: the instance, the preview, the raw upload, the documents and results go.
    deleted = pacs_json("studies", "delete", study_key)
    assert deleted["deletion"]["status"] == "completed"
    assert deleted["deletion"]["counts"]["instances"] == 1
    # The derived objects of its one series: the preview, and the WADO-RS metadata and frame
    # index built beside it (pacs.indexing.series_metadata).
    assert deleted["deletion"]["counts"]["previews"] == 3
    assert pacs_json("studies")["studies"] == []
    gone = pacs("studies", "get", study_key, "--json")
    assert gone.returncode != 0 and json.loads(gone.stdout)["error"] == "not_found"
    objects = all_objects(cloud)
    assert not any(user.uid in n for names in objects.values() for n in names)
    assert not [p for p, d in all_documents(cloud).items()
                if study_key in p or mentions(d, study_key)
                if not p.startswith("deletions/")]
    record = fs.collection("uploads").document(upload_id).get().to_dict()
    assert record["counts_toward_quota"] is False and record["results_removed"] == 1
