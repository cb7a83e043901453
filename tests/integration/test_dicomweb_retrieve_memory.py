"""A study retrieve never holds a study, or an instance, in memory: the domain call streams
large objects from the Storage emulator while ``tracemalloc`` watches every Python
allocation; the peak stays near one 1 MiB chunk while 96 MiB go through, as multipart and as
a ZIP."""

from __future__ import annotations

import secrets
import tracemalloc

import pytest
from pacs import ids
from pacs.dicomweb import wado
from pacs.indexing import catalog

from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud

MIB = 1024 * 1024
INSTANCES, SIZE = 6, 16 * MIB
EXPLICIT = "1.2.840.10008.1.2.1"


def seed_large_study(cloud: LocalCloud) -> tuple[str, str]:
    """(owner uid, StudyInstanceUID) of a study of INSTANCES objects of SIZE bytes each,
    written as the indexer leaves them (the objects are not DICOM: the indexer ignores
    them; a retrieve sends bytes as stored)."""
    clients = cloud.clients()
    fs, bucket = clients.firestore, clients.storage.bucket(cloud.buckets["instances"])
    key = cloud.settings().hash_key
    uid = f"mem-{secrets.token_hex(6)}"
    study_uid = f"1.2.826.0.1.{secrets.randbelow(10**9)}"
    series_uid = f"{study_uid}.1"
    study, series = ids.study_key(key, uid, study_uid), ids.series_key(key, uid, series_uid)
    catalog.study_ref(fs, study).set({"owner": uid, "StudyInstanceUID": study_uid})
    catalog.series_ref(fs, study, series).set(
        {"owner": uid, "SeriesInstanceUID": series_uid, "SeriesNumber": 1})
    block = secrets.token_bytes(MIB)
    for i in range(INSTANCES):
        sop = f"{series_uid}.{i}"
        instance = ids.instance_key(key, uid, sop)
        blob = bucket.blob(ids.instance_object(uid, study, instance))
        blob.upload_from_string(bytes([i]) + block * (SIZE // MIB))
        blob.reload()
        catalog.instance_ref(fs, study, series, instance).set(
            {"owner": uid, "object": blob.name, "generation": str(blob.generation),
             "size": blob.size, "SOPInstanceUID": sop, "InstanceNumber": i + 1,
             "TransferSyntaxUID": EXPLICIT})
    return uid, study_uid


@pytest.fixture(scope="module")
def large_study(cloud: LocalCloud) -> tuple[str, str]:
    return seed_large_study(cloud)


@pytest.mark.parametrize("accept", [None, "application/zip"])
def test_a_large_study_streams_with_one_chunk_in_memory(cloud: LocalCloud, large_study,
                                                        accept):
    uid, study_uid = large_study
    clients = cloud.clients()
    tracemalloc.start()
    try:
        body = wado.retrieve(clients, uid, study_uid, None, None, accept=accept)
        total = 0
        for chunk in body.chunks:
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > INSTANCES * SIZE  # every byte went through (plus the framing)
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB while streaming {total / MIB:.0f} MiB"
