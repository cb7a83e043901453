"""Uploading through the real path in tests: real CT instances to upload, create_upload over
HTTP, bytes through the resumable session, then waiting for the upload record to be final."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.localcloud_fixture import LocalCloud, User, wait_for

FINAL = ("complete", "partial", "failed")


def start_upload(cloud: LocalCloud, user: User, filename: str, size: int,
                 content_type: str = "application/octet-stream",
                 confirm_adult: bool = True) -> requests.Response:
    """POST create_upload. Uploads need the 18+ profile, which sign-up creates on the website
    and in the CLI; ``confirm_adult`` does the same here (idempotent)."""
    if confirm_adult:
        cloud.confirm_adult(user)
    return requests.post(cloud.urls["create-upload"] + "/", headers=user.headers(), timeout=30,
                         json={"filename": filename, "size": size, "content_type": content_type})


def put_session(session_url: str, data: bytes) -> None:
    resp = requests.put(session_url, data=data, timeout=120,
                        headers={"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
    assert resp.status_code in (200, 201), resp.text


def upload_bytes(cloud: LocalCloud, user: User, data: bytes, filename: str = "upload.bin",
                 content_type: str = "application/octet-stream") -> str:
    resp = start_upload(cloud, user, filename, len(data), content_type)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    put_session(body["session_url"], data)
    return body["upload_id"]


def upload_record(cloud: LocalCloud, upload_id: str) -> dict[str, Any]:
    snap = cloud.clients().firestore.collection("uploads").document(upload_id).get()
    return snap.to_dict() or {}


def wait_final(cloud: LocalCloud, upload_id: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(lambda: (r := upload_record(cloud, upload_id)).get("status") in FINAL and r,
                    timeout=timeout, what=f"upload {upload_id} to finish")


def file_results(cloud: LocalCloud, upload_id: str) -> list[dict[str, Any]]:
    files = cloud.clients().firestore.collection("uploads").document(upload_id).collection("files")
    return sorted((s.to_dict() for s in files.stream()), key=lambda d: d["index"])


def zip_bytes(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()


def make_instances(count: int, *, series: int = 1, patient_name: str = "Doe^Jane",
                   patient_id: str = "PID-1") -> list[tuple[str, bytes]]:
    """``count`` distinct real CT instances (CT_small with fresh UIDs), in ``series`` series."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study_uid = generate_uid()
    series_uids = [generate_uid() for _ in range(series)]
    members = []
    for i in range(count):
        ds = template.copy()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uids[i % series]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        members.append((f"img{i:05d}.dcm", buf.getvalue()))
    return members


def instance_docs(cloud: LocalCloud, uid: str) -> list[dict[str, Any]]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = cloud.clients().firestore.collection_group("instances").where(
        filter=FieldFilter("owner", "==", uid))
    return [s.to_dict() for s in query.stream()]


def instance_objects(cloud: LocalCloud, uid: str) -> list[Any]:
    bucket = cloud.clients().storage.bucket(cloud.buckets["instances"])
    return list(bucket.list_blobs(prefix=f"{uid}/"))


def wait_settled(cloud: LocalCloud, uid: str, expected_instances: int, timeout: float = 120):
    """Wait until the instance docs exist, every series has a settled preview status, and
    every study holds its series' counts and modalities (settle writes the study last, after
    the series' preview: waiting for the previews alone reads studies a moment early)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    fs = cloud.clients().firestore

    def settled():
        if len(instance_docs(cloud, uid)) < expected_instances:
            return False
        series = [s.to_dict() for s in fs.collection_group("series").where(
            filter=FieldFilter("owner", "==", uid)).stream()]
        if not series or not all((s.get("preview") or {}).get("status")
                                 in ("ready", "none", "failed") for s in series):
            return False
        for snap in fs.collection("studies").where(filter=FieldFilter("owner", "==", uid)).stream():
            study = snap.to_dict()
            mine = [s for s in series if s.get("study_key") == snap.id]
            if study.get("instance_count") != sum(s.get("instance_count") or 0 for s in mine):
                return False
            if not {s["Modality"] for s in mine if s.get("Modality")} <= set(
                    study.get("modalities") or []):
                return False
        return series

    return wait_for(settled, timeout=timeout, what="series to settle")


def read(path: str | Path) -> bytes:
    return Path(path).read_bytes()
