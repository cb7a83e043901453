"""Helpers of the privacy tests: calls to the ``privacy-requests`` function (and to
``sign-link``), stale tokens, seeded studies and users, and an inventory of everything the
emulators hold for a test project (every Firestore document at any depth, every object of
the three buckets, every Auth user), independent of the registry it is used to check."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import pydicom
import requests
from pacs import ids
from pacs.json_values import plain
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.localcloud_fixture import LocalCloud, User, wait_for

UA = "pacs-tests/1.0 (privacy)"


def call(cloud: LocalCloud, route: str, user: User | None = None, method: str = "POST",
         body: Any = None, token: str | None = None, function: str = "privacy-requests"
         ) -> requests.Response:
    headers = {"User-Agent": UA}
    if token or user:
        headers["Authorization"] = f"Bearer {token or user.id_token}"
    return requests.request(method, f"{cloud.urls[function]}/{route}", json=body,
                            headers=headers, timeout=120)


def ok(resp: requests.Response, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def stale_token(user: User, age_seconds: int = 600) -> str:
    """The user's emulator ID token with its sign-in time moved ``age_seconds`` back: what a
    token refreshed long after the sign-in looks like (the emulator does not sign tokens,
    and firebase-admin accepts unsigned ones only against the emulator)."""
    header, payload, signature = user.id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["auth_time"] = int(time.time()) - age_seconds
    return ".".join([header, _b64url(json.dumps(claims).encode()), signature])


def sign_link(cloud: LocalCloud, route: str, user: User | None = None, body: Any = None,
              method: str = "POST") -> requests.Response:
    """A call to the ``sign-link`` function (manifests, shares), as the privacy tests make it."""
    return call(cloud, route, user, method, body, function="sign-link")


def create_profile(cloud: LocalCloud, user: User, name: str = "Test User") -> dict:
    return ok(call(cloud, "profile", user, body={"adult": True, "display_name": name}), 201)


def wait_request(cloud: LocalCloud, user: User, request_id: str, timeout: float = 240) -> dict:
    def done():
        r = call(cloud, f"requests/{request_id}", user, "GET").json().get("request") or {}
        return r if r.get("status") in ("completed", "rejected") else None

    return wait_for(done, timeout=timeout, interval=0.5, what=f"request {request_id}")


def wait_receipt(cloud: LocalCloud, receipt_id: str, timeout: float = 240) -> dict:
    def done():
        resp = call(cloud, f"receipts/{receipt_id}", method="GET")
        receipt = resp.json().get("receipt") if resp.status_code == 200 else None
        return receipt if receipt and receipt["status"] == "completed" else None

    return wait_for(done, timeout=timeout, interval=0.5, what="erasure receipt")


def wait_upload_refused(cloud: LocalCloud, upload_id: str, what: str) -> None:
    """Wait until the finalize handler refused the upload because its owner is erased."""
    wait_for(lambda: any(line.get("event") == "upload_refused" and line.get("code") == "erased"
                         and line.get("upload_id") == upload_id
                         for line in cloud.log_lines("on-upload-finalized")),
             timeout=120, what=what)


# --- Seeded studies (documents and objects as ingest writes them) -----------------------------

@dataclass
class SeededStudy:
    uid: str
    study_key: str
    series_key: str
    instances: list[str] = field(default_factory=list)
    preview: str = ""


def seed_study(cloud: LocalCloud, uid: str, patient_id: str = "PID-SEED", count: int = 2
               ) -> SeededStudy:
    """A study with one series, ``count`` instances and a preview, written directly."""
    fs, storage = cloud.clients().firestore, cloud.clients().storage
    study, series = secrets.token_hex(16), secrets.token_hex(16)
    seeded = SeededStudy(uid, study, series)
    study_ref = fs.collection("studies").document(study)
    series_ref = study_ref.collection("series").document(series)
    for i in range(count):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = generate_uid()
        ds.PatientID = patient_id
        buf = io.BytesIO()
        ds.save_as(buf)
        data = buf.getvalue()
        instance = secrets.token_hex(16)
        name = ids.instance_object(uid, study, instance)
        blob = storage.bucket(cloud.buckets["instances"]).blob(name)
        blob.upload_from_string(data, content_type="application/dicom")
        series_ref.collection("instances").document(instance).set({
            "owner": uid, "study_key": study, "series_key": series, "object": name,
            "generation": str(blob.generation), "size": len(data), "InstanceNumber": i + 1,
            "sha256": hashlib.sha256(data).hexdigest()})
        seeded.instances.append(instance)
    preview = ids.preview_object(uid, study, series)
    blob = storage.bucket(cloud.buckets["derived"]).blob(preview)
    blob.upload_from_string(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, content_type="image/png")
    seeded.preview = preview
    series_ref.set({"owner": uid, "study_key": study, "Modality": "CT", "SeriesNumber": 1,
                    "instance_count": count,
                    "preview": {"status": "ready", "object": preview,
                                "generation": str(blob.generation)}})
    study_ref.set({"owner": uid, "PatientID": patient_id, "StudyDate": "20240101",
                   "series_count": 1, "instance_count": count, "modalities": ["CT"]})
    return seeded


def seed_user(cloud: LocalCloud, pid: str) -> tuple[User, str]:
    """A user with a profile, a seeded study of patient ``pid``, a share and a manifest of
    it, and analytics consent. Returns the user and the study key."""
    user = cloud.create_user()
    create_profile(cloud, user)
    study = seed_study(cloud, user.uid, patient_id=pid)
    ok(sign_link(cloud, "shares", user, {"study_id": study.study_key}))
    ok(sign_link(cloud, "manifest", user, {"study_id": study.study_key}))
    ok(call(cloud, "consent", user, body={"analytics": True}))
    return user, study.study_key


# --- Inventory -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Doc:
    path: str
    group: str  # the collection id
    text: str  # the data as JSON ("" for a missing document that has subcollections)


@dataclass(frozen=True)
class Obj:
    bucket: str
    name: str
    data: bytes


def _walk(collection: Any) -> list[Doc]:
    out = []
    for ref in collection.list_documents():  # includes missing parents of subcollections
        snap = ref.get()
        text = json.dumps(plain(snap.to_dict()), sort_keys=True) if snap.exists else ""
        out.append(Doc(ref.path, collection.id, text))
        for sub in ref.collections():
            out.extend(_walk(sub))
    return out


def all_documents(cloud: LocalCloud) -> list[Doc]:
    """Every document of the project, at every depth (admin client, no registry)."""
    out = []
    for collection in cloud.clients().firestore.collections():
        out.extend(_walk(collection))
    return out


def all_objects(cloud: LocalCloud) -> list[Obj]:
    storage = cloud.clients().storage
    out = []
    for bucket in cloud.buckets.values():
        for blob in storage.list_blobs(bucket):
            out.append(Obj(bucket, blob.name, blob.download_as_bytes()))
    return out


def all_auth_users(cloud: LocalCloud) -> list[Any]:
    from firebase_admin import auth

    return list(auth.list_users(app=cloud.clients().firebase_app).iterate_all())


def clear_buckets(cloud: LocalCloud) -> None:
    storage = cloud.clients().storage
    for bucket in cloud.buckets.values():
        for blob in storage.list_blobs(bucket):
            try:
                blob.delete()
            except Exception:  # noqa: BLE001 - gone already
                pass


def wipe(cloud: LocalCloud) -> None:
    """Leave the test project empty: seeded studies are not real ingests (random instance
    keys), and tests that reconcile the whole project after these must not meet them."""
    cloud.clear_firestore()
    clear_buckets(cloud)


def mentions(needles: list[str], text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        return [n for n in needles if n.encode() in text]
    return [n for n in needles if n in text]
