"""Promises of the privacy policy that had no test of their own (docs/privacy.md, "Policy
promises, behaviour and tests"), on the local cloud with a real study uploaded through ingest.

- ``uploads-metadata``: "We store file metadata (filename, size, content type) and attempt to
  extract study metadata (StudyInstanceUID and limited DICOM header fields)". The upload
  record keeps what the client sent; no Firestore document holds a header attribute outside
  the indexer's fixed fields, and the whole header stays only in the stored file, its raw
  upload and the series' WADO-RS metadata beside its preview (all the user's, deleted with
  the study or the account).
- ``retain-while-account``: "We retain your account data and uploaded files for as long as
  your account exists". Every retention job, run years later, leaves the account's study,
  its objects, previews, documents, upload record and profile as they were; only the raw
  upload object (the canonical instances are the kept copy) may go.
- ``safeguards-examples`` ("access controls, Firebase Auth for authentication"): every owner
  route of every HTTP function answers 401 without a token or with one that is not a
  Firebase ID token; privacy_requests' routes are read from its own tables, so a new one is
  swept too.
"""

from __future__ import annotations

import gzip
import io
import secrets
from datetime import timedelta
from typing import Any

import pydicom
import pytest
import requests
from firebase_admin import auth
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs.retention import runner
from pacs.retention.jobs import JOBS
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.ingest_helpers import (
    file_results,
    upload_bytes,
    upload_record,
    wait_final,
    wait_settled,
    zip_bytes,
)
from tests.localcloud_fixture import LocalCloud, User
from tests.privacy_helpers import all_documents, all_objects, wipe
from tests.retention_helpers import now

pytestmark = pytest.mark.localcloud

INSTANCES = 2
# Header attributes no index field holds (each value carries the module's random marker).
EXTRA = {"PatientAddress": "LO", "OtherPatientIDs": "LO", "PatientTelephoneNumbers": "SH",
         "InstitutionName": "LO", "InstitutionAddress": "ST", "PatientComments": "LT",
         "OperatorsName": "PN"}


def _instances(marker: str) -> list[tuple[str, bytes]]:
    """CT_small with fresh UIDs, one study of one series, with the extra attributes and a
    private block, all holding ``marker``."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study, series = generate_uid(), generate_uid()
    members = []
    for i in range(INSTANCES):
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.PatientName, ds.PatientID = f"Kept^{marker}", f"PID{marker}"
        for n, (keyword, vr) in enumerate(EXTRA.items()):
            value = f"X{n}{marker}" if vr != "PN" else f"Op^{marker}"
            ds.add_new(pydicom.datadict.tag_for_keyword(keyword), vr, value)
        block = ds.private_block(0x0011, "POLICYTEST", create=True)
        block.add_new(0x01, "LO", f"Private{marker}")
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        members.append((f"img{i}.dcm", buf.getvalue()))
    return members


@pytest.fixture(scope="module")
def ingested(cloud: LocalCloud) -> dict[str, Any]:
    """One user with one real study uploaded as a ZIP and settled, in a project emptied first
    (as the erasure inventory does), so that reading every document and object stays small
    after a whole test session."""
    wipe(cloud)
    marker = secrets.token_hex(6).upper()
    user: User = cloud.create_user()
    data = zip_bytes(_instances(marker))
    upload_id = upload_bytes(cloud, user, data, "study.zip", "application/zip")
    record = wait_final(cloud, upload_id)
    assert record["status"] == "complete", record
    wait_settled(cloud, user.uid, INSTANCES)
    extras = [f"X{n}{marker}" for n, vr in enumerate(EXTRA.values()) if vr != "PN"]
    return {"user": user, "upload_id": upload_id, "size": len(data),
            "extras": [*extras, f"Op^{marker}", f"Private{marker}"], "marker": marker}


def _text(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_the_database_keeps_file_metadata_and_only_the_indexed_header_fields(cloud, ingested):
    uid, extras = ingested["user"].uid, ingested["extras"]
    # The upload record: the file metadata the client sent
    record = upload_record(cloud, ingested["upload_id"])
    assert (record["filename"], record["size"], record["content_type"]) == (
        "study.zip", ingested["size"], "application/zip")
    assert [r["status"] for r in file_results(cloud, ingested["upload_id"])] == ["stored"] * 2
    # The indexed fields are there ...
    fs = cloud.clients().firestore
    [study] = [s.to_dict() for s in fs.collection("studies").where(
        filter=FieldFilter("owner", "==", uid)).stream()]
    assert study["PatientID"] == f"PID{ingested['marker']}"
    # ... and no document of the project holds any other header attribute's value.
    documents = all_documents(cloud)
    assert any(f"PID{ingested['marker']}" in d.text for d in documents)
    holding = [(d.path, e) for d in documents for e in extras if e in d.text]
    assert holding == [], holding
    # The whole header is only in the user's own file, its raw upload and its series'
    # WADO-RS metadata (beside the preview): nowhere else, in no bucket.
    allowed = {("instances", f"{uid}/"), ("uploads", f"{uid}/"), ("derived", f"previews/{uid}/")}
    roles = {bucket: role for role, bucket in cloud.buckets.items()}
    holders = [(roles[o.bucket], o.name) for o in all_objects(cloud)
               if any(e.encode() in _text(o.data) for e in extras)]
    assert holders, "the stored files keep their whole header"
    elsewhere = [h for h in holders if not any(h[0] == r and h[1].startswith(p)
                                               for r, p in allowed)]
    assert elsewhere == [], elsewhere
    derived = [name for role, name in holders if role == "derived"]
    assert all(".meta." in n or ".part." in n for n in derived), derived


def _kept(cloud: LocalCloud, uid: str, upload_id: str) -> dict[str, Any]:
    """What the account keeps: its documents (paths), the objects of the instances and
    derived buckets (name → generation) and the Auth account."""
    fs = cloud.clients().firestore
    mine = FieldFilter("owner", "==", uid)
    docs = {s.reference.path for s in fs.collection("studies").where(filter=mine).stream()}
    for group in ("series", "instances"):
        docs |= {s.reference.path for s in fs.collection_group(group).where(filter=mine).stream()}
    upload = fs.collection("uploads").document(upload_id)
    docs |= {r.path for r in (fs.collection("users").document(uid), upload) if r.get().exists}
    docs |= {s.reference.path for s in upload.collection("files").stream()}
    storage = cloud.clients().storage
    objects = {(role, b.name): b.generation for role in ("instances", "derived")
               for prefix in (f"{uid}/", f"previews/{uid}/")
               for b in storage.list_blobs(cloud.buckets[role], prefix=prefix)}
    account = auth.get_user(uid, app=cloud.clients().firebase_app)
    return {"docs": docs, "objects": objects, "account": (account.uid, account.disabled)}


def test_no_retention_job_deletes_the_account_data_for_its_age(cloud, ingested):
    uid, upload_id = ingested["user"].uid, ingested["upload_id"]
    before = _kept(cloud, uid, upload_id)
    assert sum(1 for role, _ in before["objects"] if role == "instances") == INSTANCES
    assert any(role == "derived" for role, _ in before["objects"]), "previews"
    assert len(before["docs"]) == 1 + 1 + INSTANCES + 1 + 1 + INSTANCES, before["docs"]
    # Act: every retention job, three years and a day later (past every period but the
    # erasure receipt's, which no live account has)
    later = now() + timedelta(days=3 * 365 + 1)
    records = {job: runner.run(cloud.clients(), job, now=lambda: later, scope=f"{uid}/",
                               lease=False) for job in JOBS}
    assert {j: r["errors"] for j, r in records.items() if r["errors"]} == {}
    assert {r["status"] for r in records.values()} == {runner.SUCCEEDED}
    # Assert: the same documents, objects (same generations) and account
    after = _kept(cloud, uid, upload_id)
    assert after["objects"] == before["objects"]
    assert after["docs"] == before["docs"]
    assert after["account"] == before["account"] == (uid, False)
    # The raw upload object is the one thing that goes: the instances are the kept copy.
    raw = upload_record(cloud, upload_id)["object"]
    assert cloud.clients().storage.bucket(cloud.buckets["uploads"]).get_blob(raw) is None


# --- "access controls" (row safeguards-examples): deny by default -----------------------------

KEY, UID = "0" * 32, "1.2.3.4"
OWNER_ROUTES = {
    "create-upload": [("POST", "/")],
    "studies": [("GET", "/"), ("POST", "/search"), ("GET", f"/{KEY}"), ("DELETE", f"/{KEY}")],
    "sign-link": [("POST", "/manifest"), ("POST", "/series"), ("POST", "/shares"),
                  ("GET", "/shares"), ("DELETE", f"/shares/{KEY}"), ("GET", "/access")],
    "dicomweb": [("GET", "/studies"), ("GET", "/series"), ("GET", "/instances"),
                 ("GET", f"/studies/{UID}"), ("GET", f"/studies/{UID}/metadata"),
                 ("GET", f"/studies/{UID}/series/{UID}/instances/{UID}/frames/1"),
                 ("GET", f"/studies/{UID}/series/{UID}/instances/{UID}/rendered"),
                 ("POST", "/studies"), ("DELETE", f"/studies/{UID}")],
}
# privacy_requests' routes come from its own tables, so a new route is swept too; the
# erasure receipt is public by design (the account is gone when it is read).
PUBLIC_PRIVACY_ROUTES = {"receipt"}


def _privacy_routes() -> list[tuple[str, str]]:
    import importlib.util

    from localcloud import config

    spec = importlib.util.spec_from_file_location(
        "privacy_requests_main_routes", config.ROOT / "functions" / "privacy_requests" / "main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    routes = [(m, "/" + "/".join(path)) for path, methods in main.ROUTES.items()
              for m, name in methods.items()]
    routes += [(m, f"/{coll}/{KEY}") for coll, methods in main.ITEM_ROUTES.items()
               for m, name in methods.items() if name not in PUBLIC_PRIVACY_ROUTES]
    routes += [(m, f"/{coll}/{KEY}/{action}") for (coll, action), methods
               in main.ACTION_ROUTES.items() for m in methods]
    return routes


def test_every_owner_route_refuses_a_request_without_a_valid_token(cloud_env: LocalCloud):
    table = {**OWNER_ROUTES, "privacy-requests": _privacy_routes()}
    assert len(table["privacy-requests"]) >= 15
    answers = {}
    for function, routes in table.items():
        for method, path in routes:
            for auth_header in ({}, {"Authorization": "Bearer not-a-token"}):
                resp = requests.request(method, cloud_env.urls[function] + path, json={},
                                        headers=auth_header, timeout=60)
                answers[(function, method, path, bool(auth_header))] = resp.status_code
    assert {k: v for k, v in answers.items() if v != 401} == {}
