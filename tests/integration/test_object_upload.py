"""Ingest's create-only object upload (pacs.ingest.object_upload): one JSON API multipart
request through the Storage client's session for objects up to 8 MiB, the library's chunked
upload above. Checked against the Storage emulator with the real client: the object holds
exactly the bytes, content type, metadata and CRC32C, the returned object is what the
server reports, and a second create of the name is refused and changes nothing."""

from __future__ import annotations

import base64
import io
import uuid

import google_crc32c
import pytest
from google.api_core.exceptions import PreconditionFailed
from pacs.ingest import object_upload

pytestmark = pytest.mark.localcloud

PROPERTIES = ("name", "generation", "size", "crc32c", "md5_hash",
              "content_type", "metadata", "time_created")


@pytest.fixture
def bucket(cloud):
    storage = cloud.clients().storage
    made = storage.create_bucket(f"object-upload-{uuid.uuid4().hex[:10]}")
    yield made
    for blob in made.list_blobs():
        blob.delete()
    made.delete()


@pytest.mark.parametrize("size", [0, 1, 526_000, object_upload.MULTIPART_MAX,
                                  object_upload.MULTIPART_MAX + 1])
def test_an_object_is_created_as_sent(cloud, bucket, size):
    # Arrange
    storage = cloud.clients().storage
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    metadata = {"owner": "u1", "sha256": "ab" * 32, "member": "3"}
    name = f"u1/study/{uuid.uuid4().hex}.dcm"
    # Act
    blob = object_upload.create_object(storage, bucket.name, name, io.BytesIO(data), size,
                                       "application/dicom", metadata)
    # Assert: the bytes and properties stored, and the returned object is the server's
    stored = bucket.get_blob(name)
    assert stored.download_as_bytes() == data
    assert stored.content_type == "application/dicom" and stored.metadata == metadata
    assert stored.crc32c == base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
    assert {p: getattr(blob, p) for p in PROPERTIES} == {p: getattr(stored, p)
                                                         for p in PROPERTIES}


def test_a_second_create_is_refused_and_changes_nothing(cloud, bucket):
    storage = cloud.clients().storage
    name = "u1/study/one.dcm"
    first = object_upload.create_object(storage, bucket.name, name, io.BytesIO(b"first"), 5,
                                        "application/dicom", {"member": "0"})
    with pytest.raises(PreconditionFailed):
        object_upload.create_object(storage, bucket.name, name, io.BytesIO(b"second"), 6,
                                    "application/dicom", {"member": "1"})
    stored = bucket.get_blob(name)
    assert (stored.generation, stored.download_as_bytes(), stored.metadata) == (
        first.generation, b"first", {"member": "0"})


def test_data_shorter_than_its_size_is_refused_before_any_write(cloud, bucket):
    storage = cloud.clients().storage
    with pytest.raises(ValueError):
        object_upload.create_object(storage, bucket.name, "u1/short.dcm", io.BytesIO(b"abc"),
                                    4, "application/dicom", {})
    assert list(bucket.list_blobs()) == []
