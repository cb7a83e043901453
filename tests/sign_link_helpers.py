"""Helpers of the viewer-link tests (``tests/integration/test_sign_link*.py``): studies seeded
directly, calls to the real ``sign-link`` function, shares, and signed URLs checked offline
against the signing key's public half (``tests/v4_verifier.py``) and fetched from
fake-gcs-server, which serves them without checking the signature.

Studies are seeded directly (objects under their canonical names, documents with the admin
client), so these tests do not depend on ingest. The instance keys are random: the indexer
sees names that do not match the files' SOP Instance UIDs and leaves them alone.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pydicom
import requests
from pacs import ids
from pacs.links import signing
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.localcloud_fixture import LocalCloud, User
from tests.v4_verifier import verify

UA = "pacs-tests/1.0 (sign-link)"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
TTL = 15 * 60


# --- Seeded studies --------------------------------------------------------------------------

@dataclass
class Seeded:
    uid: str
    study_key: str
    series: dict[str, list[str]] = field(default_factory=dict)  # series key -> instance keys
    objects: dict[str, bytes] = field(default_factory=dict)  # object name -> bytes
    previews: dict[str, str] = field(default_factory=dict)  # series key -> preview object


def _dicom(instance_number: int) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = instance_number
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def seed_study(cloud: LocalCloud, uid: str, instances_per_series=(3, 2),
               previews: bool = True) -> Seeded:
    """A study of the user: DICOM objects, previews and the documents ingest would write."""
    fs = cloud.clients().firestore
    storage = cloud.clients().storage
    study = secrets.token_hex(16)
    seeded = Seeded(uid, study)
    study_ref = fs.collection("studies").document(study)
    total = 0
    for number, count in enumerate(instances_per_series, start=1):
        series = secrets.token_hex(16)
        seeded.series[series] = []
        series_ref = study_ref.collection("series").document(series)
        for i in range(count):
            instance = secrets.token_hex(16)
            data = _dicom(i + 1)
            name = ids.instance_object(uid, study, instance)
            blob = storage.bucket(cloud.buckets["instances"]).blob(name)
            blob.upload_from_string(data, content_type="application/dicom")
            series_ref.collection("instances").document(instance).set({
                "owner": uid, "study_key": study, "series_key": series,
                "SOPInstanceUID": f"1.2.3.{number}.{i}", "InstanceNumber": i + 1,
                "ImagePositionPatient": [0.0, 0.0, float(i)], "SliceLocation": float(i),
                "Rows": 128, "Columns": 128, "NumberOfFrames": 1,
                "TransferSyntaxUID": "1.2.840.10008.1.2.1", "object": name,
                "generation": str(blob.generation), "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()})
            seeded.series[series].append(instance)
            seeded.objects[name] = data
        preview = {"status": "none"}
        if previews:
            name = ids.preview_object(uid, study, series)
            blob = storage.bucket(cloud.buckets["derived"]).blob(name)
            png = PNG + series.encode()
            blob.upload_from_string(png, content_type="image/png")
            preview = {"status": "ready", "object": name, "generation": str(blob.generation),
                       "instance_key": seeded.series[series][0]}
            seeded.previews[series] = name
            seeded.objects[name] = png
        series_ref.set({"owner": uid, "study_key": study, "Modality": "CT",
                        "SeriesNumber": number, "SeriesDescription": f"series {number}",
                        "instance_count": count, "preview": preview})
        total += count
    first_preview = next(iter(seeded.previews.values()), None)
    study_ref.set({"owner": uid, "StudyDate": "20040119", "StudyDescription": "CT seeded",
                   "PatientName": "CompressedSamples^CT1", "StudyInstanceUID": "1.2.3",
                   "series_count": len(instances_per_series), "instance_count": total,
                   "modalities": ["CT"],
                   "preview": {"status": "ready", "object": first_preview} if first_preview
                   else None})
    return seeded


def delete_study_docs(cloud: LocalCloud, study: str) -> None:
    fs = cloud.clients().firestore
    ref = fs.collection("studies").document(study)
    for series in ref.collection("series").stream():
        for inst in series.reference.collection("instances").stream():
            inst.reference.delete()
        series.reference.delete()
    ref.delete()


# --- The sign-link function ------------------------------------------------------------------

def call(cloud: LocalCloud, route: str, body=None, user: User | None = None,
         method: str = "POST", headers: dict | None = None, params=None) -> requests.Response:
    h = {"User-Agent": UA, **(user.headers() if user else {}), **(headers or {})}
    return requests.request(method, f"{cloud.urls['sign-link']}/{route}", json=body, headers=h,
                            params=params, timeout=60)


def ok(resp: requests.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def all_series_pages(cloud, user, study, series, page_size=None) -> list[dict]:
    pages, token = [], None
    while True:
        body = {"study_id": study, "series_id": series, "page_token": token}
        if page_size:
            body["page_size"] = page_size
        page = ok(call(cloud, "series", body, user))
        pages.append(page)
        token = page["next_page_token"]
        if not token:
            return pages


def access_records(cloud, uid) -> list[dict]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    q = cloud.clients().firestore.collection("access").where(
        filter=FieldFilter("owner", "==", uid))
    return [s.to_dict() for s in q.stream()]


# --- Shares ----------------------------------------------------------------------------------

def create_share(cloud, user, study, **kwargs) -> dict:
    return ok(call(cloud, "shares", {"study_id": study, **kwargs}, user))


def mutated(token: str) -> str:
    """The token with its last character changed."""
    return token[:-1] + ("B" if token[-1] != "B" else "C")


def exchange(cloud, token) -> requests.Response:
    return call(cloud, "share/manifest", {"token": token})


# --- Signed URLs -----------------------------------------------------------------------------

def fetch(url: str, timeout: float = 120) -> requests.Response:
    """GET a signed URL from fake-gcs-server, exactly as issued.

    fake-gcs-server serves path-style (XML API) downloads only when the Host header is its
    ``-public-host`` (default ``storage.googleapis.com``). An emulator layer started without
    ``-public-host 127.0.0.1`` answers 404 to the URL as issued; then the same URL (same
    address, path and query) is sent again naming the default public host.
    """
    resp = requests.get(url, timeout=timeout)
    if resp.status_code == 404:
        resp = requests.get(url, timeout=timeout, headers={"Host": "storage.googleapis.com"})
    return resp


def check_url(url: str, public_key, *, bucket: str, name: str, generation: str,
              max_lifetime: int = TTL):
    """The URL verifies, names exactly this object version and lives at most max_lifetime."""
    verified = verify(url, public_key, now=datetime.now(UTC), max_lifetime=max_lifetime)
    assert (verified.bucket, verified.object_name, verified.generation) == (bucket, name,
                                                                             generation)
    assert verified.account.startswith(signing.LOCAL_SIGNER_NAME + "@demo-test-")
    return verified
