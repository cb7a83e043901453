"""Ingest makes each stored instance's series metadata entry from the header it parsed and
writes them per series and batch as a part in the derived bucket; settling builds the
series' WADO-RS metadata from the parts without reading the instance objects, equal to what
reading the objects builds, and deletes the parts it used (issue 17: settle spent ~12 ms
per instance re-reading and re-parsing every object). A part entry of another object
generation is not trusted."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore as gfs
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs.indexing import metadata_parts, series_metadata
from pacs.ingest import pipeline
from pydicom.data import get_testdata_file

from tests.ingest_helpers import read, zip_bytes
from tests.integration.test_write_races import own_buckets, stage_upload

pytestmark = pytest.mark.localcloud

# Native, JPEG baseline, JPEG 2000 (fragments walked), deflated and RLE: one series each.
FILES = ["CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm", "image_dfl.dcm",
         "emri_small_RLE.dcm"]


def ingested(cloud: Any) -> tuple[Any, str]:
    """The files ingested in-process into buckets no trigger watches: (clients, uid)."""
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances", "derived")
    data = zip_bytes([(f"f{i}.dcm", read(get_testdata_file(n))) for i, n in enumerate(FILES)])
    batch = stage_upload(clients, user.uid, data, "files.zip")
    assert pipeline.process(clients, batch) == "done"
    return clients, user.uid


def series_of(clients: Any, uid: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Each series' instance documents as settle reads them, by (study key, series key)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for snap in clients.firestore.collection_group("instances").where(
            filter=FieldFilter("owner", "==", uid)).stream():
        series = snap.reference.parent.parent
        key = (series.parent.parent.id, series.id)
        out.setdefault(key, []).append({**snap.to_dict(), "key": snap.id})
    return out


def build(clients: Any, uid: str) -> dict[tuple[str, str], tuple[list, dict]]:
    """Rebuild every series from scratch: (metadata array, frame index) of each."""
    out = {}
    derived = clients.storage.bucket(clients.settings.derived_bucket)
    for (study, series), docs in series_of(clients, uid).items():
        ref = clients.firestore.document(f"studies/{study}/series/{series}")
        ref.update({"metadata": gfs.DELETE_FIELD})
        assert series_metadata.rebuild(clients, uid, study, series, docs,
                                       datetime.now(UTC)) == "built"
        pointer = ref.get().to_dict()["metadata"]
        out[(study, series)] = tuple(
            json.loads(gzip.decompress(derived.blob(pointer[k]).download_as_bytes()))
            for k in ("object", "frames_object"))
    return out


def parts(clients: Any, uid: str) -> dict[str, bytes]:
    derived = clients.storage.bucket(clients.settings.derived_bucket)
    return {b.name: b.download_as_bytes() for b in derived.list_blobs(prefix=f"previews/{uid}/")
            if ".part." in b.name}


def put_parts(clients: Any, saved: dict[str, bytes]) -> None:
    derived = clients.storage.bucket(clients.settings.derived_bucket)
    for name, data in saved.items():
        derived.blob(name).upload_from_string(data, content_type="application/gzip")


def test_settle_builds_the_series_metadata_from_ingest_entries_without_the_objects(cloud):
    # Arrange: ingest wrote one part per series, under the keyed prefix, each entry
    # naming its object's generation
    clients, uid = ingested(cloud)
    saved = parts(clients, uid)
    series = series_of(clients, uid)
    assert len(saved) == len(series) == len(FILES)
    for name, data in saved.items():
        entries = json.loads(gzip.decompress(data))["entries"]
        study, key = name.split("/")[2], name.split("/")[3].split(".")[0]
        assert {k: e["g"] for k, e in entries.items()} == {
            d["key"]: d["generation"] for d in series[(study, key)]}
    # What reading the objects builds (no parts)
    derived = clients.storage.bucket(clients.settings.derived_bucket)
    for name in saved:
        derived.blob(name).delete()
    expected = build(clients, uid)
    assert all(len(meta) == 1 and "e" not in next(iter(index["instances"].values()))
               for meta, index in expected.values())
    # Act: the parts back, the instance objects gone: only the parts can feed the build
    put_parts(clients, saved)
    instances = clients.storage.bucket(clients.settings.instances_bucket)
    for blob in list(instances.list_blobs(prefix=f"{uid}/")):
        blob.delete()
    built = build(clients, uid)
    # Assert: the same metadata and frame index, and the parts used are deleted
    assert built == expected
    assert parts(clients, uid) == {}


def test_an_entry_of_another_generation_is_not_used(cloud):
    # Arrange: one part's entry claims another generation of its object
    clients, uid = ingested(cloud)
    saved = parts(clients, uid)
    name = sorted(saved)[0]
    entries = json.loads(gzip.decompress(saved[name]))["entries"]
    [(key, entry)] = entries.items()
    forged = {key: {**entry, "g": str(int(entry["g"]) + 1), "d": "{}"}}
    saved[name] = metadata_parts.encode(forged)
    put_parts(clients, saved)
    # Act
    built = build(clients, uid)
    # Assert: that instance was read from its object (its real metadata, not the forged
    # "{}"), and the part it could not use is left for the reconcile job
    study, series = name.split("/")[2], name.split("/")[3].split(".")[0]
    meta, index = built[(study, series)]
    assert meta and meta[0] != {} and index["instances"][key]["g"] == entry["g"]
    assert list(parts(clients, uid)) == [name]


def test_a_lone_file_makes_no_part_and_settle_reads_its_object(cloud):
    # Arrange: one file uploaded alone (the web client's folder upload sends each file as
    # its own upload): a part would cost a write, a list and a delete for one read saved
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances", "derived")
    batch = stage_upload(clients, user.uid, read(get_testdata_file("CT_small.dcm")), "a.dcm")
    # Act
    assert pipeline.process(clients, batch) == "done"
    # Assert: no part; the metadata is built from the object
    assert parts(clients, user.uid) == {}
    [(meta, index)] = build(clients, user.uid).values()
    assert len(meta) == 1 and "f" in next(iter(index["instances"].values()))


def test_an_archive_interleaving_its_series_writes_one_part_per_series(cloud):
    # Arrange: 120 members of three series in turn, so every batch of 50 holds all three
    from tests.ingest_helpers import make_instances

    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances", "derived")
    batch = stage_upload(clients, user.uid, zip_bytes(make_instances(120, series=3)),
                         "interleaved.zip")
    # Act
    assert pipeline.process(clients, batch) == "done"
    # Assert: one part per series holding all 40 of its entries (a part per series and
    # results batch before: 12 here, each a write, a list entry and a delete)
    saved = parts(clients, user.uid)
    series = series_of(clients, user.uid)
    assert len(series) == 3 and len(saved) == 3
    for name, data in saved.items():
        study, key = name.split("/")[2], name.split("/")[3].split(".")[0]
        entries = json.loads(gzip.decompress(data))["entries"]
        assert {k: e["g"] for k, e in entries.items()} == {
            d["key"]: d["generation"] for d in series[(study, key)]}
