"""An erasure that begins while an archive is being processed stops it: the next batch of
results (or the next new series) sees the marker and nothing more is written for the user."""

from __future__ import annotations

import dataclasses
import io
import uuid
import zipfile
from datetime import UTC, datetime

import pydicom
import pytest
from pacs.ingest import pipeline
from pacs.privacy import erasure
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.ingest_helpers import file_results

pytestmark = pytest.mark.localcloud

MEMBERS = 120


def _archive() -> bytes:
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study, series = generate_uid(), generate_uid()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(MEMBERS):
            ds = template.copy()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            zf.writestr(f"{i:04d}.dcm", out.getvalue())
    return buf.getvalue()


def test_erasure_beginning_mid_archive_stops_further_writes(cloud):
    # Arrange: an upload object in a bucket of its own (no trigger), so this test drives
    # ingest itself and decides when the erasure begins.
    user = cloud.create_user()
    clients = cloud.clients()
    bucket = clients.storage.create_bucket(f"race-{uuid.uuid4().hex[:12]}")
    clients = dataclasses.replace(clients, settings=dataclasses.replace(
        clients.settings, uploads_bucket=bucket.name))
    upload_id = uuid.uuid4().hex
    blob = bucket.blob(f"{user.uid}/{upload_id}")
    blob.upload_from_string(_archive(), content_type="application/zip")
    clients.firestore.collection("uploads").document(upload_id).set(
        {"owner": user.uid, "status": "processing", "generation": str(blob.generation)})
    calls = 0

    def now_then_erase() -> datetime:
        # Ingest asks the time once per member stored: the erasure begins after 30 of them.
        nonlocal calls
        calls += 1
        if calls == 30:
            erasure.write_marker(clients.firestore, clients.settings, user.uid, "request",
                                 datetime.now(UTC))
        return datetime.now(UTC)

    # Act
    outcome = pipeline.process(clients, pipeline.Batch(user.uid, upload_id, str(blob.generation)),
                             now=now_then_erase)

    # Assert: stopped, not finished; far fewer results than members were written
    assert outcome == "erased"
    record = clients.firestore.collection("uploads").document(upload_id).get().to_dict()
    assert record["status"] == "processing" and "counts" not in record
    assert len(file_results(cloud, upload_id)) < MEMBERS // 2
