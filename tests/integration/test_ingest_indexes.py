"""Ingest writes the instance documents of what it stores, in the transactions of their
per-file results (issue 17); the indexer recognises those objects from the finalize event's
metadata and does nothing for them. The documents are the indexer's own, at-least-once
holds after a crash between an object's write and its document's, and an erasure that
begins between them leaves nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs.events import StorageObjectEvent
from pacs.indexing import catalog
from pacs.ingest import pipeline
from pydicom.uid import generate_uid

from tests.ingest_helpers import (
    file_results,
    instance_docs,
    instance_objects,
    make_instances,
    upload_bytes,
    wait_final,
    wait_settled,
    zip_bytes,
)
from tests.integration.test_write_races import (
    archive,
    at_call,
    dicom_bytes,
    erase_completely,
    erased_everywhere,
    leftovers,
    own_buckets,
    stage_upload,
)
from tests.localcloud_fixture import wait_for

pytestmark = pytest.mark.localcloud


def event_for(blob: Any) -> StorageObjectEvent:
    """The finalize event of ``blob`` as Eventarc delivers it: with the object's metadata."""
    return StorageObjectEvent("e1", "google.cloud.storage.object.v1.finalized",
                              blob.bucket.name, blob.name, str(blob.generation), blob.size,
                              "application/dicom", "", "", metadata=dict(blob.metadata or {}))


def without_time(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "indexed_at"}


def full_path_documents(clients: Any, blobs: list[Any]) -> dict[str, dict[str, Any]]:
    """What the indexer's full path (read and parse the object, as the reconcile job does)
    writes for each object, by object name."""
    out = {}
    for blob in blobs:
        assert catalog.index_instance(clients, event_for(blob), use_seal=False) == "indexed"
        [doc] = [d.to_dict() for d in clients.firestore.collection_group("instances").where(
            filter=FieldFilter("object", "==", blob.name)).stream()]
        out[blob.name] = without_time(doc)
    return out


def test_ingest_indexes_an_archive_and_the_indexer_recognises_it_from_the_event(cloud):
    # Arrange: five CT slices in two series, uploaded through the real path
    user = cloud.create_user()
    members = make_instances(5, series=2)
    # Act
    upload_id = upload_bytes(cloud, user, zip_bytes(members), "ct.zip", "application/zip")
    # Assert: stored, indexed and settled as before
    assert wait_final(cloud, upload_id)["status"] == "complete"
    wait_settled(cloud, user.uid, 5)
    docs = {d["object"]: without_time(d) for d in instance_docs(cloud, user.uid)}
    blobs = instance_objects(cloud, user.uid)
    assert sorted(docs) == sorted(b.name for b in blobs) and len(blobs) == 5
    # The indexer handled every finalize event from its metadata alone
    wait_for(lambda: len([line for line in cloud.log_lines("on-instance-finalized")
                          if line.get("event") == "instance_indexed"
                          and line.get("uid") == user.uid]) >= 5, timeout=60,
             what="the indexer to see every finalize event")
    outcomes = [line["outcome"] for line in cloud.log_lines("on-instance-finalized")
                if line.get("event") == "instance_indexed" and line.get("uid") == user.uid]
    assert outcomes == ["by_ingest"] * 5
    # The documents are exactly what the indexer's full path writes for the same objects
    assert full_path_documents(cloud.clients(), blobs) == docs
    assert {r["status"] for r in file_results(cloud, upload_id)} == {"stored"}


def test_a_crash_between_the_object_and_its_document_is_indexed_on_redelivery(cloud):
    # Arrange: a single file in buckets no trigger watches; ingest dies after writing the
    # object, when it asks the time to commit the result and the document (call 2)
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    batch = stage_upload(clients, user.uid, dicom_bytes(generate_uid(), generate_uid()),
                         "a.dcm")

    class Killed(BaseException):
        pass

    def die() -> None:
        raise Killed

    with pytest.raises(Killed):
        pipeline.process(clients, batch, now=at_call(2, die))
    [blob] = list(clients.storage.list_blobs(clients.settings.instances_bucket,
                                             prefix=f"{user.uid}/"))
    fs = clients.firestore
    assert not list(fs.collection_group("instances").where(
        filter=FieldFilter("object", "==", blob.name)).stream())
    # The finalize event is recognised as ingest's: the indexer writes nothing
    assert catalog.index_instance(clients, event_for(blob)) == "by_ingest"
    # Act: the upload event is redelivered (it was never acknowledged)
    assert pipeline.process(clients, batch) == "done"
    # Assert: the object is its own earlier copy, stored once, and now indexed
    [again] = list(clients.storage.list_blobs(clients.settings.instances_bucket,
                                              prefix=f"{user.uid}/"))
    assert again.generation == blob.generation
    [doc] = [d.to_dict() for d in fs.collection_group("instances").where(
        filter=FieldFilter("object", "==", blob.name)).stream()]
    [result] = [s.to_dict() for s in fs.collection("uploads").document(batch.upload_id)
                .collection("files").stream()]
    assert result["status"] == "stored" and doc["generation"] == str(blob.generation)
    assert full_path_documents(clients, [again]) == {blob.name: without_time(doc)}


def test_the_reconcile_path_indexes_a_tagged_object_without_a_document(cloud):
    # Arrange: as above, ingest died before the commit, and no redelivery came
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    batch = stage_upload(clients, user.uid, dicom_bytes(generate_uid(), generate_uid()),
                         "a.dcm")

    def die() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.process(clients, batch, now=at_call(2, die))
    [blob] = list(clients.storage.list_blobs(clients.settings.instances_bucket,
                                             prefix=f"{user.uid}/"))
    # Act / Assert: the reconcile job's call does not trust the tag
    assert catalog.index_instance(clients, event_for(blob), use_seal=False) == "indexed"


def test_a_forged_or_copied_tag_is_not_trusted(cloud):
    # Arrange: an object stored and indexed by ingest; its metadata copied to another name
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    batch = stage_upload(clients, user.uid, dicom_bytes(generate_uid(), generate_uid()),
                         "a.dcm")
    assert pipeline.process(clients, batch) == "done"
    [blob] = list(clients.storage.list_blobs(clients.settings.instances_bucket,
                                             prefix=f"{user.uid}/"))
    key = clients.settings.hash_key
    assert catalog.indexed_by_ingest(key, blob.name, blob.metadata)
    other = blob.name.rsplit("/", 1)[0] + "/" + "0" * 32 + ".dcm"
    assert not catalog.indexed_by_ingest(key, other, blob.metadata)
    assert not catalog.indexed_by_ingest(b"another deployment's key, 32 bytes",
                                         blob.name, blob.metadata)
    forged = {**blob.metadata, catalog.INDEXED_BY_INGEST: "0" * 32}
    assert not catalog.indexed_by_ingest(key, blob.name, forged)
    # Act: an event of this object without the tag takes the indexer's own path
    event = dataclasses.replace(event_for(blob), metadata=forged)
    # Assert
    assert catalog.index_instance(clients, event) == "indexed"


def test_an_erasure_between_the_objects_and_their_commit_leaves_nothing(cloud):
    # Arrange: an archive of 40 members in buckets no trigger watches (no indexer cleans
    # up); the erasure runs, start to final pass, when the first batch of results is about
    # to be committed (the clock's second call; the first created the parents), with
    # members stored and more on the way
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    batch = stage_upload(clients, user.uid, archive(generate_uid(), generate_uid()), "ct.zip")
    receipts: list[dict[str, Any]] = []
    # Act
    outcome = pipeline.process(clients, batch,
                               now=at_call(2, erase_completely(clients, user.uid, receipts)))
    # Assert: ingest deleted every object it stored after the erasure's passes
    assert receipts and receipts[0]["status"] == "completed"
    assert outcome == "erased"
    assert leftovers(clients, user.uid) == []
    assert erased_everywhere(cloud, clients, user.uid) == []
