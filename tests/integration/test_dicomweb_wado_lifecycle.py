"""The life of a series' precomputed WADO-RS metadata (``pacs.indexing.series_metadata``):
settle builds it; a series without one (settled before the feature) answers 503 until the
backfill job builds it, and the job then stops after one state read; a new instance in the
series rebuilds it (reading only the new instance); the objects go with the study's
deletion and with the owner's erasure.
"""

from __future__ import annotations

import pydicom
import pytest
import requests
from pacs import ids
from pacs.indexing import catalog
from pacs.privacy import erasure
from pacs.retention import runner
from pacs.studies import deletion
from pydicom.data import get_testdata_file

from tests.dicomweb_helpers import ingest, read_original
from tests.localcloud_fixture import LocalCloud, User, wait_for

pytestmark = pytest.mark.localcloud


def derived_names(cloud: LocalCloud, uid: str) -> set[str]:
    bucket = cloud.buckets["derived"]
    return {b.name for b in cloud.clients().storage.list_blobs(bucket,
                                                                prefix=f"previews/{uid}/")}


def series_doc(cloud: LocalCloud, uid: str, ds: pydicom.Dataset) -> tuple[object, dict]:
    key = cloud.settings().hash_key
    ref = catalog.series_ref(cloud.clients().firestore,
                             ids.study_key(key, uid, ds.StudyInstanceUID),
                             ids.series_key(key, uid, ds.SeriesInstanceUID))
    return ref, ref.get().to_dict()


def metadata_url(cloud: LocalCloud, ds: pydicom.Dataset) -> str:
    return (f"{cloud.urls['dicomweb']}/studies/{ds.StudyInstanceUID}/series/"
            f"{ds.SeriesInstanceUID}/metadata")


def sops(answer: requests.Response) -> list[str]:
    return sorted(i["00080018"]["Value"][0] for i in answer.json())


@pytest.fixture
def owner(cloud: LocalCloud) -> User:
    return cloud.create_user()


def test_backfill_builds_what_settle_did_not(cloud, owner):
    # Arrange: a settled series whose metadata build is gone (as before this feature)
    original = read_original(get_testdata_file("CT_small.dcm"))
    ingest(cloud, owner, [original])
    ds = original.ds
    ref, doc = series_doc(cloud, owner.uid, ds)
    built = doc["metadata"]
    assert {built["object"], built["frames_object"]} <= derived_names(cloud, owner.uid)
    from google.cloud import firestore as gfs

    ref.update({"metadata": gfs.DELETE_FIELD})
    for name in (built["object"], built["frames_object"]):
        cloud.clients().storage.bucket(cloud.buckets["derived"]).blob(name).delete()
    pending = requests.get(metadata_url(cloud, ds), headers=owner.headers(), timeout=30)

    # Act
    first = runner.run(cloud.clients(), "backfill_series_metadata", scope=f"{owner.uid}/")
    second = runner.run(cloud.clients(), "backfill_series_metadata", scope=f"{owner.uid}/")

    # Assert
    assert (pending.status_code, pending.json()["error"]) == (503, "metadata_pending")
    assert first["status"] == runner.SUCCEEDED, first
    assert first["counts"]["series_metadata_built"] == 1
    assert second["counts"].get("studies_read", 0) == 0  # done: one state read
    answer = requests.get(metadata_url(cloud, ds), headers=owner.headers(), timeout=30)
    assert answer.status_code == 200 and sops(answer) == [ds.SOPInstanceUID]
    assert series_doc(cloud, owner.uid, ds)[1]["metadata"]["object"] != built["object"]


def test_a_new_instance_rebuilds_and_the_study_deletion_removes_it(cloud, owner):
    # Arrange: a series of one instance, then a second instance of the same series
    first = read_original(get_testdata_file("CT_small.dcm"))
    ingest(cloud, owner, [first])
    ds = first.ds
    before = series_doc(cloud, owner.uid, ds)[1]["metadata"]
    second = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    second.SOPInstanceUID = ds.SOPInstanceUID + ".2"
    second.InstanceNumber = 2
    from io import BytesIO

    buffer = BytesIO()
    second.save_as(buffer, enforce_file_format=True)
    path = get_testdata_file("CT_small.dcm")
    copy = read_original(path)
    copy.data, copy.ds = buffer.getvalue(), second

    # Act 1 (the study then holds both: waiting for a count of 1 passed only when it was
    # read before settle counted the second)
    ingest(cloud, owner, [copy], totals={ds.StudyInstanceUID: 2})
    after = wait_for(lambda: (m := series_doc(cloud, owner.uid, ds)[1]["metadata"])
                     ["instances"] == 2 and m, timeout=120, what="the series rebuilt")

    # Assert 1: a new build with both instances; the previous build's objects are gone
    answer = requests.get(metadata_url(cloud, ds), headers=owner.headers(), timeout=30)
    assert sops(answer) == sorted([ds.SOPInstanceUID, second.SOPInstanceUID])
    names = derived_names(cloud, owner.uid)
    assert after["object"] in names and before["object"] not in names
    assert before["frames_object"] not in names

    # Act 2: the study is deleted
    study = ids.study_key(cloud.settings().hash_key, owner.uid, ds.StudyInstanceUID)
    record = deletion.delete_study(cloud.clients(), owner.uid, study)

    # Assert 2
    assert record["status"] == "completed", record
    assert not {n for n in derived_names(cloud, owner.uid) if study in n}
    gone = requests.get(metadata_url(cloud, ds), headers=owner.headers(), timeout=30)
    assert gone.status_code == 404


def test_erasure_removes_every_metadata_object(cloud, owner):
    original = read_original(get_testdata_file("MR_small.dcm"))
    ingest(cloud, owner, [original])
    assert any(".meta." in n for n in derived_names(cloud, owner.uid))

    erasure.erase(cloud.clients(), owner.uid)

    assert derived_names(cloud, owner.uid) == set()


def test_an_instance_indexed_since_the_build_is_pending_not_unknown(cloud, owner):
    # Arrange: the series is built; an instance document arrives after (settle not yet run)
    original = read_original(get_testdata_file("CT_small.dcm"))
    ingest(cloud, owner, [original])
    ds = original.ds
    key = cloud.settings().hash_key
    ref, _ = series_doc(cloud, owner.uid, ds)
    late = ds.SOPInstanceUID + ".9"
    ref.collection("instances").document(ids.instance_key(key, owner.uid, late)).set(
        {"owner": owner.uid, "SOPInstanceUID": late})
    base = metadata_url(cloud, ds).removesuffix("/metadata")

    # Act
    pending = requests.get(f"{base}/instances/{late}/metadata", headers=owner.headers(),
                           timeout=30)
    unknown = requests.get(f"{base}/instances/{late}.1/metadata", headers=owner.headers(),
                           timeout=30)

    # Assert
    assert (pending.status_code, pending.json()["error"]) == (503, "metadata_pending")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
