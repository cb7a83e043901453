"""The indexer and the sealed header: ingest's objects are indexed from their seal, objects
without a trustworthy seal are read and parsed (and their parents created), and the seal
puts no readable identifier into object metadata (which finalize events carry)."""

from __future__ import annotations

import io
import uuid

import pydicom
import pytest
from pacs import ids
from pacs.dicom import seal
from pacs.indexing import catalog
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.ingest_helpers import (
    file_results,
    instance_docs,
    instance_objects,
    upload_bytes,
    wait_final,
    wait_settled,
)
from tests.localcloud_fixture import wait_for

pytestmark = pytest.mark.localcloud


def _dicom(patient: str) -> tuple[bytes, pydicom.Dataset]:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = patient
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), ds


def _object_name(key: bytes, uid: str, ds: pydicom.Dataset) -> str:
    return ids.instance_object(uid, ids.study_key(key, uid, ds.StudyInstanceUID),
                               ids.instance_key(key, uid, ds.SOPInstanceUID))


def test_ingested_object_carries_a_seal_matching_its_document(cloud):
    # Arrange
    user = cloud.create_user()
    data, ds = _dicom(f"Seal^{uuid.uuid4().hex[:6]}")
    key = cloud.clients().settings.hash_key
    # Act
    upload_id = upload_bytes(cloud, user, data, "ct.dcm", "application/dicom")
    wait_final(cloud, upload_id)
    wait_settled(cloud, user.uid, 1)
    # Assert: the seal opens for this object and says what the document says
    [blob] = instance_objects(cloud, user.uid)
    token = blob.metadata[seal.METADATA_KEY]
    sealed = seal.open_seal(key, blob.name, token)
    [doc] = instance_docs(cloud, user.uid)
    assert sealed["fields"]["SOPInstanceUID"] == ds.SOPInstanceUID == doc["SOPInstanceUID"]
    assert {k: doc[k] for k in catalog.INSTANCE_FIELDS} == {
        k: sealed["fields"][k] for k in catalog.INSTANCE_FIELDS}
    # Nothing identifying is readable in the metadata the finalize event carries.
    metadata = repr(blob.metadata)
    for value in (str(ds.PatientName), ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID):
        assert value not in metadata
    [result] = file_results(cloud, upload_id)
    assert result["status"] == "stored"


def test_object_without_seal_is_parsed_and_gets_its_parent_documents(cloud):
    # Arrange: an instance written straight to the bucket (another path than ingest)
    user = cloud.create_user()
    clients = cloud.clients()
    key = clients.settings.hash_key
    data, ds = _dicom(f"Plain^{uuid.uuid4().hex[:6]}")
    name = _object_name(key, user.uid, ds)
    # Act
    clients.storage.bucket(cloud.buckets["instances"]).blob(name).upload_from_string(data)
    # Assert
    [doc] = wait_for(lambda: instance_docs(cloud, user.uid), what="instance document")
    assert doc["SOPInstanceUID"] == ds.SOPInstanceUID
    study = wait_for(lambda: clients.firestore.collection("studies").document(
        ids.study_key(key, user.uid, ds.StudyInstanceUID)).get().to_dict(), what="study document")
    assert study["PatientName"] == str(ds.PatientName) and study["owner"] == user.uid


def test_seal_copied_onto_another_object_is_not_trusted(cloud):
    # Arrange: a genuine seal, made for object A, put on object B (another SOP instance)
    user = cloud.create_user()
    clients = cloud.clients()
    key = clients.settings.hash_key
    data_a, ds_a = _dicom("Copy^A")
    data_b, ds_b = _dicom("Copy^B")
    name_a, name_b = _object_name(key, user.uid, ds_a), _object_name(key, user.uid, ds_b)
    forged = seal.seal(key, name_a, catalog.sealed_fields(
        {"SOPInstanceUID": ds_b.SOPInstanceUID, "SeriesInstanceUID": ds_a.SeriesInstanceUID,
         "Rows": 1, "Columns": 1}, True))
    blob = clients.storage.bucket(cloud.buckets["instances"]).blob(name_b)
    blob.metadata = {seal.METADATA_KEY: forged}
    # Act
    blob.upload_from_string(data_b)
    # Assert: indexed from B's own bytes, not from the copied seal
    [doc] = wait_for(lambda: instance_docs(cloud, user.uid), what="instance document")
    assert doc["SOPInstanceUID"] == ds_b.SOPInstanceUID
    assert (doc["Rows"], doc["Columns"]) == (ds_b.Rows, ds_b.Columns)
    assert doc["series_key"] == ids.series_key(key, user.uid, ds_b.SeriesInstanceUID)
