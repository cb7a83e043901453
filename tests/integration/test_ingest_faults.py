"""Ingest under duplicate, concurrent and crashing delivery, checkpointing, and the log
promise: no PHI in any process's log."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pydicom
import pytest

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
from tests.localcloud_fixture import start_test_cloud, stop_test_cloud, wait_for

pytestmark = pytest.mark.localcloud


def _assert_one_object_and_doc_per_instance(cloud, uid: str, expected: int) -> None:
    objects = instance_objects(cloud, uid)
    docs = wait_for(lambda: (d := instance_docs(cloud, uid)) and len(d) >= expected and d,
                    what="instance docs")
    assert len(objects) == expected
    assert len(docs) == expected
    assert len({d["SOPInstanceUID"] for d in docs}) == expected


def test_duplicate_concurrent_delivery_converges(cloud):
    # Arrange
    user = cloud.create_user()
    members = make_instances(30, series=2)
    cloud.set_deliveries(2)
    try:
        # Act
        upload_id = upload_bytes(cloud, user, zip_bytes(members), "dup.zip", "application/zip")
        record = wait_final(cloud, upload_id)
        wait_settled(cloud, user.uid, 30)
    finally:
        cloud.set_deliveries(1)
    # Assert
    assert record["status"] == "complete"
    assert record["counts"]["stored"] == 30 and record["counts"]["total"] == 30
    _assert_one_object_and_doc_per_instance(cloud, user.uid, 30)
    series = wait_for(lambda: (s := [d.to_dict() for d in cloud.clients().firestore
                                     .collection_group("series").stream()
                                     if d.to_dict().get("owner") == user.uid])
                      and all(x.get("instance_count") == 15 for x in s) and s,
                      what="series counts")
    assert sorted(x["instance_count"] for x in series) == [15, 15]


def test_two_archives_sharing_half_their_instances_at_once(cloud):
    # Arrange
    user = cloud.create_user()
    members = make_instances(30)
    first, second = zip_bytes(members[:20]), zip_bytes(members[10:])
    ids: list[str] = []
    # Act: both uploads finalize at about the same time
    threads = [threading.Thread(target=lambda d=d: ids.append(
        upload_bytes(cloud, user, d, "half.zip", "application/zip"))) for d in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [wait_final(cloud, i) for i in ids]
    # Assert: 30 unique instances; the shared ten are stored once and duplicate once
    _assert_one_object_and_doc_per_instance(cloud, user.uid, 30)
    stored = sum(r["counts"]["stored"] for r in records)
    duplicates = sum(r["counts"]["duplicate"] for r in records)
    assert (stored, duplicates) == (30, 10)
    assert all(r["status"] == "complete" for r in records)


def test_same_sop_other_bytes_is_a_conflict_and_first_copy_kept(cloud):
    # Arrange
    user = cloud.create_user()
    [(name, original)] = make_instances(1)
    ds = pydicom.dcmread(io.BytesIO(original))
    ds.StudyDescription = "changed"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    # Act
    first = wait_final(cloud, upload_bytes(cloud, user, original, "a.dcm", "application/dicom"))
    second_id = upload_bytes(cloud, user, buf.getvalue(), "b.dcm", "application/dicom")
    second = wait_final(cloud, second_id)
    # Assert
    assert first["status"] == "complete"
    assert second["status"] == "failed" and second["counts"]["conflict"] == 1
    assert file_results(cloud, second_id)[0]["reason"] == "conflict"
    [blob] = instance_objects(cloud, user.uid)
    assert blob.download_as_bytes()[128:] == original[128:]


def _worker_pids(master_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master_pid:
                pids.append(int(entry.name))
    return pids


def test_crash_mid_archive_then_redelivery_ends_complete(cloud):
    # Arrange: an archive big enough to be mid-way when the worker is killed
    user = cloud.create_user()
    members = make_instances(120)
    child = next(c for c in cloud.children if c.name.endswith(".on-upload-finalized"))
    # Act
    upload_id = upload_bytes(cloud, user, zip_bytes(members), "crash.zip", "application/zip")
    wait_for(lambda: len(file_results(cloud, upload_id)) >= 5, what="some members processed")
    for pid in _worker_pids(child.pid):
        os.kill(pid, signal.SIGKILL)  # a real crash: gunicorn starts a new worker
    record = wait_final(cloud, upload_id, timeout=180)
    # Assert
    assert record["status"] == "complete"
    assert record["counts"]["stored"] == 120 and record["counts"]["total"] == 120
    _assert_one_object_and_doc_per_instance(cloud, user.uid, 120)


@pytest.fixture(scope="module")
def short_deadline_cloud(tmp_path_factory):
    """A second stack whose event deadline is 1 s, so archives checkpoint many times."""
    saved = dict(os.environ)
    test_cloud = start_test_cloud(tmp_path_factory.mktemp("short-deadline"),
                                  extra_env={"PACS_EVENT_DEADLINE_SECONDS": "1",
                                             "PACS_UPLOADS_PER_HOUR": "3",
                                             "PACS_USER_QUOTA_BYTES": str(40 * 1024**2)})
    yield test_cloud
    stop_test_cloud(test_cloud)
    os.environ.clear()
    os.environ.update(saved)


def test_checkpointed_batches_continue_through_pubsub(short_deadline_cloud):
    cloud = short_deadline_cloud
    user = cloud.create_user()
    members = make_instances(400)
    upload_id = upload_bytes(cloud, user, zip_bytes(members), "batches.zip", "application/zip")
    record = wait_final(cloud, upload_id, timeout=240)
    checkpoints = [line for line in cloud.log_lines("on-upload-finalized")
                   + cloud.log_lines("continue-upload")
                   if line.get("event") == "upload_checkpoint"
                   and line.get("upload_id") == upload_id]
    assert len(checkpoints) >= 2
    assert record["status"] == "complete" and record["counts"]["stored"] == 400
    _assert_one_object_and_doc_per_instance(cloud, user.uid, 400)


def test_quota_and_rate_limits_answer_429(short_deadline_cloud):
    from tests.ingest_helpers import start_upload

    cloud = short_deadline_cloud
    user = cloud.create_user()
    resp = start_upload(cloud, user, "big.zip", 41 * 1024**2, "application/zip")
    assert resp.status_code == 429 and resp.json()["error"] == "quota_exceeded"
    codes = [start_upload(cloud, user, "a.dcm", 1000, "application/dicom").status_code
             for _ in range(4)]
    assert codes[:3] == [200, 200, 200]
    assert codes[3] == 429


def test_no_phi_in_any_log(cloud):
    # Arrange: distinctive identifiers in the header, the file name, member names, and an
    # element that breaks parsing
    name, pid = f"Zyxwqv^Quokka{uuid.uuid4().hex[:6]}", f"PHI{uuid.uuid4().hex[:8]}"
    user = cloud.create_user()
    members = make_instances(3, patient_name=name, patient_id=pid)
    broken = bytearray(members[0][1])
    marker = f"{name}{pid}".encode()
    broken[200:200 + len(marker)] = marker  # overwrite the start of the dataset: parse fails
    archive = zip_bytes([(f"{name}_{pid}_{i}.dcm", d) for i, (_, d) in enumerate(members)]
                        + [(f"{pid}_broken.dcm", bytes(broken)), (f"{name}.txt", marker)])
    # Act
    upload_id = upload_bytes(cloud, user, archive, f"{name}-{pid}.zip", "application/zip")
    wait_final(cloud, upload_id)
    wait_settled(cloud, user.uid, 3)
    time.sleep(1)
    # Assert
    text = cloud.all_log_text()
    assert text  # the logs are there
    for needle in (name, pid, name.split("^")[1], name.replace("^", " ")):
        assert needle not in text, f"PHI {needle!r} found in logs"
