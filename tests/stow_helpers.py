"""STOW-RS test helpers: raw multipart request bodies (framed by hand, so tests see the
bytes), the Store Instances Response read back, and the upload ledger of a STOW request."""

from __future__ import annotations

import io
from typing import Any

import pydicom
import requests
from google.cloud.firestore_v1.base_query import FieldFilter
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.ingest_helpers import file_results
from tests.localcloud_fixture import LocalCloud, User

BOUNDARY = "stow-test-7c1e2f"
DICOM = "application/dicom"
REFERENCED, FAILED, RETRIEVE_URL = "00081199", "00081198", "00081190"
SOP_CLASS, SOP_INSTANCE, FAILURE_REASON = "00081150", "00081155", "00081197"


def multipart(parts: list[bytes], boundary: str = BOUNDARY,
              part_type: str | None = DICOM) -> bytes:
    """A ``multipart/related`` body as PS3.18 frames it (each part's ``Content-Type``)."""
    out = bytearray()
    for data in parts:
        out += f"--{boundary}\r\n".encode()
        if part_type:
            out += f"Content-Type: {part_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return bytes(out + f"--{boundary}--\r\n".encode())


def content_type(boundary: str = BOUNDARY, kind: str = DICOM) -> str:
    return f'multipart/related; type="{kind}"; boundary={boundary}'


def post(cloud: LocalCloud, user: User | None, body: Any, study: str | None = None,
         ctype: str | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    url = cloud.urls["dicomweb"] + "/studies" + (f"/{study}" if study else "")
    sent = {"Content-Type": content_type() if ctype is None else ctype, "Accept": "application/dicom+json",
            **(user.headers() if user else {}), **(headers or {})}
    return requests.post(url, data=body, headers=sent, timeout=120)


def encoded(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def fresh(name: str = "CT_small.dcm", study: str | None = None, **changes: Any
          ) -> pydicom.Dataset:
    """A real pydicom test file with new UIDs (and other ``changes``)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for key, value in changes.items():
        setattr(ds, key, value)
    return ds


def referenced(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(SOP class, SOP instance, RetrieveURL) of every ReferencedSOPSequence item."""
    return [(i[SOP_CLASS]["Value"][0], i[SOP_INSTANCE]["Value"][0], i[RETRIEVE_URL]["Value"][0])
            for i in (body.get(REFERENCED) or {}).get("Value", [])]


def failed(body: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(SOP instance or None, FailureReason) of every FailedSOPSequence item."""
    return [((i.get(SOP_INSTANCE, {}).get("Value") or [None])[0], i[FAILURE_REASON]["Value"][0])
            for i in (body.get(FAILED) or {}).get("Value", [])]


def stow_records(cloud: LocalCloud, uid: str) -> list[tuple[str, dict[str, Any]]]:
    """(upload id, record) of the user's STOW requests, oldest first."""
    query = cloud.clients().firestore.collection("uploads").where(
        filter=FieldFilter("owner", "==", uid)).where(filter=FieldFilter("source", "==", "stow-rs"))
    found = [(s.id, s.to_dict()) for s in query.stream()]
    return sorted(found, key=lambda r: r[1]["created_at"])


def last_ledger(cloud: LocalCloud, uid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The user's latest STOW record and its per-part results."""
    upload_id, record = stow_records(cloud, uid)[-1]
    return record, file_results(cloud, upload_id)
