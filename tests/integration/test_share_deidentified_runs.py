"""A de-identified copy larger than one run (issue 16): with two instances per run
(``PACS_SHARE_COPY_RUN_INSTANCES=2``) the request copies the first two, the share says
``preparing`` (its recipient is told so), and the ``privacy-jobs`` job carries the copy on run
by run until it is ``ready``: every instance copied once, numbered on, under one remapped
study and series (the share's secret carried between runs, then dropped), the copy's DICOMweb
metadata built over every run's instances, and the whole study's size reserved in the quota
until the copy's own size replaces it. A share revoked while its copy is prepared has no
copy left.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time

import pydicom
import pytest
from pacs.links import deidentified

from tests.localcloud_fixture import start_test_cloud, stop_test_cloud
from tests.sign_link_helpers import call, create_share, exchange, ok, seed_study

pytestmark = pytest.mark.localcloud


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    saved = dict(os.environ)
    cloud = start_test_cloud(tmp_path_factory.mktemp("share-copy-runs"),
                             extra_env={"PACS_SHARE_COPY_RUN_INSTANCES": "2"})
    yield cloud
    stop_test_cloud(cloud)
    os.environ.clear()
    os.environ.update(saved)


def _share_doc(cloud, share_id: str) -> dict:
    snap = cloud.clients().firestore.collection("shares").document(share_id).get()
    return snap.to_dict() if snap.exists else {}


def _wait(predicate, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def _objects(cloud, uid: str, share_id: str) -> dict[str, bytes]:
    storage = cloud.clients().storage
    return {b.name: b.download_as_bytes() for b in storage.list_blobs(
        cloud.buckets["derived"], prefix=deidentified.prefix(uid, share_id))}


def test_a_copy_over_several_runs_is_one_consistent_copy(small_runs):
    cloud = small_runs
    owner = cloud.create_user()
    seeded = seed_study(cloud, owner.uid, instances_per_series=(3, 2), previews=False)
    originals = sum(len(v) for v in seeded.series.values())
    share = create_share(cloud, owner, seeded.study_key, deidentified=True)
    assert share["copy_status"] == "preparing" and share["copied"] == 2
    assert "copy_secret" not in share and "secret" not in json.dumps(share)
    # Until it is ready the recipient is told it is being prepared.
    first = exchange(cloud, share["token"])
    if _share_doc(cloud, share["share_id"])["copy"]["status"] == "preparing":
        assert first.status_code == 404 and first.json()["error"] == "copy_preparing"

    doc = _wait(lambda: (lambda d: d if d["copy"]["status"] == "ready" else None)(
        _share_doc(cloud, share["share_id"])))
    state = doc["copy"]
    assert state["copied"] == originals and state["left_out"] == {}
    assert state["runs"] >= 3 and "next" not in state
    assert deidentified.SECRET_FIELD not in doc  # the copy's secret went when it was ready
    objects = _objects(cloud, owner.uid, share["share_id"])
    dicoms = {n: d for n, d in objects.items() if n.endswith(".dcm")}
    assert sorted(dicoms) == [deidentified.prefix(owner.uid, share["share_id"]) + f"{i:06d}.dcm"
                              for i in range(originals)]
    datasets = [pydicom.dcmread(io.BytesIO(d)) for d in dicoms.values()]
    # One study, one series (every seeded file is CT_small's), across every run.
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert doc["copy_index"]["study"]["StudyInstanceUID"] == datasets[0].StudyInstanceUID
    (series,) = doc["copy_index"]["series"].values()
    assert series["instance_count"] == originals
    meta = json.loads(gzip.decompress(objects[series["metadata"]["object"]]))
    assert sorted(m["00080018"]["Value"][0] for m in meta) == sorted(
        str(ds.SOPInstanceUID) for ds in datasets)
    # The quota holds the copy's own size now (objects and metadata).
    assert doc["copy_bytes"] == sum(len(d) for d in objects.values())
    # The recipient's manifest lists every instance.
    manifest = ok(exchange(cloud, share["token"]))
    assert sum(s["instance_count"] for s in manifest["series"]) == originals
    listed = ok(call(cloud, "shares", method="GET", user=owner))["shares"]
    assert [s["copy_status"] for s in listed if s["share_id"] == share["share_id"]] == ["ready"]


def test_a_share_revoked_while_its_copy_is_prepared_keeps_no_copy(small_runs):
    cloud = small_runs
    owner = cloud.create_user()
    seeded = seed_study(cloud, owner.uid, instances_per_series=(4, 4), previews=False)
    share = create_share(cloud, owner, seeded.study_key, deidentified=True)
    assert share["copy_status"] == "preparing"
    ok(call(cloud, f"shares/{share['share_id']}", method="DELETE", user=owner))
    _wait(lambda: not _objects(cloud, owner.uid, share["share_id"]))
    time.sleep(3)  # a run that was under way when it was revoked cleans up after itself
    assert _objects(cloud, owner.uid, share["share_id"]) == {}
    assert _share_doc(cloud, share["share_id"]).get("copy_bytes") in (0, None)


def test_runs_delivered_twice_leave_one_copy_whose_documents_name_its_objects(small_runs):
    cloud = small_runs
    owner = cloud.create_user()
    seeded = seed_study(cloud, owner.uid, instances_per_series=(4, 3), previews=False)
    cloud.set_deliveries(2)  # every run's message delivered twice, concurrently
    try:
        share = create_share(cloud, owner, seeded.study_key, deidentified=True)
        doc = _wait(lambda: (lambda d: d if d["copy"]["status"] == "ready" else None)(
            _share_doc(cloud, share["share_id"])))
    finally:
        cloud.set_deliveries(1)
    assert doc["copy"]["copied"] == 7
    storage = cloud.clients().storage
    blobs = {b.name: b for b in storage.list_blobs(
        cloud.buckets["derived"], prefix=deidentified.prefix(owner.uid, share["share_id"]))}
    copies = [s.to_dict() for s in cloud.clients().firestore.collection("shares").document(
        share["share_id"]).collection(deidentified.COPIES).stream()]
    assert len(copies) == 7 == len([n for n in blobs if n.endswith(".dcm")])
    for copy in copies:  # each document names its object's one generation
        assert str(blobs[copy["object"]].generation) == copy["generation"]
    (series,) = doc["copy_index"]["series"].values()
    pointer = series["metadata"]
    assert str(blobs[pointer["object"]].generation) == pointer["generation"]
    assert str(blobs[pointer["frames_object"]].generation) == pointer["frames_generation"]
    # The recipient gets every instance through its signed URLs.
    manifest = ok(exchange(cloud, share["token"]))
    assert sum(s["instance_count"] for s in manifest["series"]) == 7


def test_a_copy_whose_next_run_was_lost_is_resumed_by_the_scheduled_job(small_runs):
    import dataclasses
    import secrets
    from datetime import UTC, datetime, timedelta

    from pacs.privacy import jobs

    cloud = small_runs
    owner = cloud.create_user()
    seeded = seed_study(cloud, owner.uid, instances_per_series=(5,), previews=False)
    clients = dataclasses.replace(cloud.clients(), settings=dataclasses.replace(
        cloud.settings(), share_copy_run_instances=2))
    # The first run made (as the request makes it) but its next run never queued: lost.
    share_id = secrets.token_hex(10)
    ref = clients.firestore.collection("shares").document(share_id)
    now = datetime.now(UTC)
    ref.create({"owner": owner.uid, "study_key": seeded.study_key, "deidentified": True,
                "token_hash": secrets.token_hex(32), "created_at": now, "revoked": False,
                "expires_at": now + timedelta(hours=1), "views": 0, "max_views": None})
    made = deidentified.make_copy(clients, owner.uid, seeded.study_key, share_id)
    assert not made["done"] and made["copied"] == 2
    ref.update({"copy": made["copy"], deidentified.SECRET_FIELD: made["secret"]})
    # Not yet stalled: nothing queued; 30 minutes on, the job queues the next run.
    assert deidentified.resume_stalled_copies(clients, now, timedelta(minutes=30)) == 0
    assert _share_doc(cloud, share_id)["copy"]["status"] == "preparing"
    assert jobs.resume_stalled(clients, now + timedelta(minutes=31)) >= 1
    doc = _wait(lambda: (lambda d: d if d["copy"]["status"] == "ready" else None)(
        _share_doc(cloud, share_id)))
    assert doc["copy"]["copied"] == 5 and doc["copy"]["runs"] == 3
