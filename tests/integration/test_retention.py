"""The ``reconcile`` retention job on the local cloud: instance documents whose object is
gone are removed and their series settled again; objects without a document are indexed
again when they can be, removed when they cannot (unreadable, misnamed, of a study being
deleted); stray previews go; nothing younger than the grace period is touched; a run out of
budget saves its position and the next run goes on from there.

How the jobs are run and what every test checks: ``tests/retention_helpers.py``. The other
jobs and the runner: ``test_retention_*.py``.
"""

from __future__ import annotations

import io
import secrets
from datetime import timedelta
from typing import Any

import pydicom
import pytest
from pacs import ids
from pacs.indexing import series_metadata
from pacs.retention import runner
from pacs.studies import deletion
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.localcloud_fixture import LocalCloud, wait_for
from tests.retention_helpers import (
    assert_run_record_shape,
    doc,
    exists,
    new_uid,
    now,
    put,
    run_scheduled,
)

pytestmark = pytest.mark.localcloud


def dicom_bytes(image: bool = True, **uids: str) -> tuple[bytes, pydicom.Dataset]:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    if not image:
        del ds.PixelData  # no preview: nothing derived is written while the test runs
    ds.SOPInstanceUID = uids.get("sop") or generate_uid()
    ds.SeriesInstanceUID = uids.get("series") or generate_uid()
    ds.StudyInstanceUID = uids.get("study") or generate_uid()
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue(), ds


def canonical_instance(cloud: LocalCloud, uid: str, image: bool = True
                       ) -> tuple[str, str, str, str]:
    """A real DICOM instance stored under its canonical name, as ingest stores it: the
    instances bucket's finalize event indexes it. Returns (object, study, series, instance)."""
    data, ds = dicom_bytes(image=image)
    key = cloud.settings().hash_key
    study = ids.study_key(key, uid, ds.StudyInstanceUID)
    series = ids.series_key(key, uid, ds.SeriesInstanceUID)
    instance = ids.instance_key(key, uid, ds.SOPInstanceUID)
    name = ids.instance_object(uid, study, instance)
    put(cloud, "instances", name, data, {"owner": uid, "upload_id": "seed", "member": "0",
                                         "sha256": "seed", "series_key": series})
    return name, study, series, instance


def instance_path(study: str, series: str, instance: str) -> str:
    return f"studies/{study}/series/{series}/instances/{instance}"


def wait_indexed(cloud: LocalCloud, path: str) -> dict[str, Any]:
    return wait_for(lambda: doc(cloud, path), timeout=120, interval=0.3, what="instance indexed")


def test_reconcile_through_pubsub_removes_documents_whose_object_is_gone(clean_firestore):
    # Arrange: three instance documents of one series; one object was lost long ago, one
    # document is recent (its object may still be on its way), one is whole.
    cloud = clean_firestore
    uid = new_uid()
    fs = cloud.clients().firestore
    t = now()
    grace = timedelta(hours=cloud.settings().reconcile_grace_hours)
    study, series = secrets.token_hex(16), secrets.token_hex(16)
    fs.document(f"studies/{study}").set({"owner": uid, "series_count": 1, "instance_count": 3})
    fs.document(f"studies/{study}/series/{series}").set(
        {"owner": uid, "study_key": study, "instance_count": 3, "preview": {"status": "none"}})
    keys = [secrets.token_hex(16) for _ in range(3)]
    whole = ids.instance_object(uid, study, keys[0])
    put(cloud, "instances", whole, b"not indexed: its name matches no SOP instance")
    for key, indexed_at in zip(keys, (t - 2 * grace, t - 2 * grace, t - grace / 2), strict=True):
        fs.document(instance_path(study, series, key)).set({
            "owner": uid, "study_key": study, "series_key": series, "size": 10,
            "object": ids.instance_object(uid, study, key), "generation": "1",
            "indexed_at": indexed_at, "is_image": False})
    # Act
    record = run_scheduled(cloud, "reconcile")
    # Assert
    assert_run_record_shape(record, "reconcile")
    assert record["counts"]["documents_removed"] == 1, record
    assert record["counts"]["settle_requested"] == 1
    assert doc(cloud, instance_path(study, series, keys[0])) is not None
    assert doc(cloud, instance_path(study, series, keys[1])) is None
    assert doc(cloud, instance_path(study, series, keys[2])) is not None
    # ... and the series' counts are recomputed by the settle function
    settled = wait_for(lambda: (d := doc(cloud, f"studies/{study}/series/{series}"))
                       and d.get("counts_at") and d, timeout=120, what="series settled")
    assert settled["instance_count"] == 2
    wait_for(lambda: doc(cloud, f"studies/{study}").get("instance_count") == 2, timeout=60,
             what="study counts recomputed")
    assert exists(cloud, "instances", whole)


def test_reconcile_repairs_or_removes_every_orphan_kind(clean_firestore):
    # Arrange
    cloud = clean_firestore
    uid = new_uid()
    fs = cloud.clients().firestore
    key = cloud.settings().hash_key
    # 1. object without document, indexable: its document was lost (crash after the write).
    # Without pixel data, so its settle builds no preview (a preview written now would be
    # "older than the grace period" by this test's clock, and its series might not point at
    # it yet when the preview pass looks).
    lost, study, series, instance = canonical_instance(cloud, uid, image=False)
    wait_indexed(cloud, instance_path(study, series, instance))
    fs.document(instance_path(study, series, instance)).delete()
    # 2. object without document that cannot be indexed: unreadable bytes
    unreadable = ids.instance_object(uid, secrets.token_hex(16), secrets.token_hex(16))
    put(cloud, "instances", unreadable, b"\x00" * 300)
    # 3. object without document, named for another SOP instance
    data, _ = dicom_bytes()
    misnamed = ids.instance_object(uid, secrets.token_hex(16), secrets.token_hex(16))
    put(cloud, "instances", misnamed, data)
    # 4. object of a study whose deletion is under way: removed, never indexed again
    deleting, d_study, d_series, d_instance = canonical_instance(cloud, uid)
    wait_indexed(cloud, instance_path(d_study, d_series, d_instance))
    fs.document(instance_path(d_study, d_series, d_instance)).delete()
    fs.collection(deletion.COLLECTION).document(
        deletion.deletion_id(key, uid, d_study)).set(
        {"owner": uid, "study_key": d_study, "status": deletion.IN_PROGRESS})
    # 5. document without object
    g_study, g_series, g_instance = (secrets.token_hex(16) for _ in range(3))
    fs.document(instance_path(g_study, g_series, g_instance)).set({
        "owner": uid, "study_key": g_study, "series_key": g_series,
        "object": ids.instance_object(uid, g_study, g_instance), "indexed_at": now()})
    # 6. previews: one of no series, one its series points at
    stray_preview = ids.preview_object(uid, secrets.token_hex(16), secrets.token_hex(16))
    put(cloud, "derived", stray_preview, b"\x89PNG")
    p_study, p_series = secrets.token_hex(16), secrets.token_hex(16)
    kept_preview = ids.preview_object(uid, p_study, p_series)
    put(cloud, "derived", kept_preview, b"\x89PNG")
    # ... and the series' metadata build: the current one kept, an older one removed
    kept_meta = series_metadata.object_names(uid, p_study, p_series, "b1")
    old_meta, _ = series_metadata.object_names(uid, p_study, p_series, "b0")
    for name in (*kept_meta, old_meta):
        put(cloud, "derived", name, b"\x1f\x8b")
    fs.document(f"studies/{p_study}/series/{p_series}").set(
        {"owner": uid, "preview": {"status": "ready", "object": kept_preview},
         "metadata": {"object": kept_meta[0], "frames_object": kept_meta[1]}})
    grace = timedelta(hours=cloud.settings().reconcile_grace_hours)
    before_grace = now() + grace - timedelta(minutes=10)
    after_grace = now() + grace + timedelta(minutes=10)
    # Act 1: within the grace period nothing is touched
    first = runner.run(cloud.clients(), "reconcile", now=lambda: before_grace, scope=f"{uid}/",
                       page_size=2)
    # Assert 1
    assert first["status"] == runner.SUCCEEDED, first
    assert first["counts"].get("objects_removed", 0) == 0
    assert first["counts"].get("documents_removed", 0) == 0
    assert first["counts"].get("previews_removed", 0) == 0
    for name in (lost, unreadable, misnamed, deleting):
        assert exists(cloud, "instances", name)
    # Act 2: past it, in small pages
    second = runner.run(cloud.clients(), "reconcile", now=lambda: after_grace, scope=f"{uid}/",
                        page_size=2)
    # Assert 2
    assert second["status"] == runner.SUCCEEDED, second
    counts = second["counts"]
    assert counts["objects_reindexed"] == 1
    assert counts["objects_removed"] == 3
    assert counts["documents_removed"] == 1
    assert counts["previews_removed"] == 2
    assert counts["passes_completed"] == 1
    assert doc(cloud, instance_path(study, series, instance))["object"] == lost
    assert exists(cloud, "instances", lost)
    assert not exists(cloud, "instances", unreadable)
    assert not exists(cloud, "instances", misnamed)
    assert not exists(cloud, "instances", deleting)
    assert doc(cloud, instance_path(d_study, d_series, d_instance)) is None
    assert doc(cloud, instance_path(g_study, g_series, g_instance)) is None
    assert not exists(cloud, "derived", stray_preview)
    assert exists(cloud, "derived", kept_preview)
    assert all(exists(cloud, "derived", name) for name in kept_meta)
    assert not exists(cloud, "derived", old_meta)
    # The re-indexed series is settled again (counts and preview)
    settled = wait_for(lambda: (d := doc(cloud, f"studies/{study}/series/{series}"))
                       and d.get("counts_at") and (d.get("preview") or {}).get("status")
                       != "pending" and d, timeout=120, what="series settled")
    assert settled["instance_count"] == 1
    assert settled["preview"]["status"] == "none"
    # Act 3: another pass finds nothing more to do
    third = runner.run(cloud.clients(), "reconcile", now=lambda: after_grace, scope=f"{uid}/")
    assert third["counts"].get("objects_reindexed", 0) == 0
    assert third["counts"].get("objects_removed", 0) == 0
    assert third["counts"]["instances_matched"] == 1


def test_reconcile_stops_at_its_budget_and_the_next_run_goes_on(clean_firestore):
    # Arrange: documents without objects, more than one page
    cloud = clean_firestore
    uid = new_uid()
    fs = cloud.clients().firestore
    study, series = secrets.token_hex(16), secrets.token_hex(16)
    keys = sorted(secrets.token_hex(16) for _ in range(5))
    for key in keys:
        fs.document(instance_path(study, series, key)).set({
            "owner": uid, "study_key": study, "series_key": series,
            "object": ids.instance_object(uid, study, key), "indexed_at": now()})
    later = now() + timedelta(hours=cloud.settings().reconcile_grace_hours + 1)
    # Act 1: no time at all: one page, then stop
    first = runner.run(cloud.clients(), "reconcile", now=lambda: later, scope=f"{uid}/",
                       page_size=2, budget_seconds=0)
    # Assert 1
    assert first["status"] == runner.PARTIAL and first["more"] is True
    assert first["counts"]["documents_removed"] == 2
    state = [s.to_dict() for s in fs.collection("retention_state").stream()]
    assert len(state) == 1 and state[0]["cursor"] == ids.instance_object(uid, study, keys[1])
    # Act 2: the next run continues from the saved position and finishes the pass
    second = runner.run(cloud.clients(), "reconcile", now=lambda: later, scope=f"{uid}/",
                        page_size=2)
    # Assert 2
    assert second["status"] == runner.SUCCEEDED
    assert second["counts"]["resumed"] == 1
    assert second["counts"]["documents_removed"] == 3
    assert second["counts"]["passes_completed"] == 1
    assert list(fs.collection("retention_state").stream()) == []
    assert not [s for s in fs.collection_group("instances").stream()
                if (s.to_dict() or {}).get("owner") == uid]
