"""Starting uploads under the quota, the hourly rates and the erasure marker, with real
parallel HTTP requests to the real ``create_upload`` function process (issue 14, items 2
and 6).

The stack of this module has small limits: a 10 MiB quota, 5 MiB and 50 files an hour.
Earlier usage is seeded as upload records (what ``create_upload`` and ingest leave behind),
so each test starts from a known amount held and started in the last hour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from pydicom.data import get_testdata_file

from tests.ingest_helpers import put_session, wait_final
from tests.localcloud_fixture import LocalCloud, User, start_test_cloud, stop_test_cloud
from tests.upload_folders import write_series

pytestmark = pytest.mark.localcloud

MIB = 1024**2
QUOTA, BYTES_PER_HOUR, FILES_PER_HOUR, BATCH_MAX = 10 * MIB, 5 * MIB, 50, 40
PARALLEL = 20


@pytest.fixture(scope="module")
def limits_cloud(tmp_path_factory):
    saved = dict(os.environ)
    cloud = start_test_cloud(tmp_path_factory.mktemp("upload-limits"), extra_env={
        "PACS_USER_QUOTA_BYTES": str(QUOTA), "PACS_UPLOAD_BYTES_PER_HOUR": str(BYTES_PER_HOUR),
        "PACS_UPLOADS_PER_HOUR": str(FILES_PER_HOUR), "PACS_UPLOAD_BATCH_MAX": str(BATCH_MAX)})
    # A warm function process (clients built, token keys fetched), so that the parallel
    # requests of the tests really overlap instead of queueing behind the first one.
    warm = _user(cloud)
    _parallel(cloud, warm, [{"filename": "", "size": 1}] * 8)
    yield cloud
    stop_test_cloud(cloud)
    os.environ.clear()
    os.environ.update(saved)


def _user(cloud: LocalCloud) -> User:
    return cloud.create_user(profile=True)


def _file(size: int, name: str = "slice.dcm") -> dict:
    return {"filename": name, "size": size, "content_type": "application/dicom"}


def _post(cloud: LocalCloud, user: User, body: dict) -> requests.Response:
    return requests.post(cloud.urls["create-upload"] + "/", json=body, headers=user.headers(),
                         timeout=120)


def _parallel(cloud: LocalCloud, user: User, bodies: list[dict]) -> list[requests.Response]:
    """POST every body at once: each thread waits at a barrier, then sends."""
    barrier = threading.Barrier(len(bodies))

    def send(body: dict) -> requests.Response:
        barrier.wait()
        return _post(cloud, user, body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def _seed(cloud: LocalCloud, uid: str, count: int, size: int, age: timedelta,
          held: bool) -> None:
    """Upload records as earlier uploads left them (``held``: still counting to the quota)."""
    fs = cloud.clients().firestore
    batch = fs.batch()
    when = datetime.now(UTC) - age
    for _ in range(count):
        batch.create(fs.collection("uploads").document(uuid.uuid4().hex), {
            "owner": uid, "filename": "earlier.dcm", "size": size,
            "content_type": "application/dicom", "status": "complete", "created_at": when,
            "updated_at": when, "object": f"{uid}/earlier", "counts_toward_quota": held})
    batch.commit()


def _records(cloud: LocalCloud, uid: str, status: str = "pending") -> list[dict]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = cloud.clients().firestore.collection("uploads").where(
        filter=FieldFilter("owner", "==", uid)).where(filter=FieldFilter("status", "==", status))
    return [s.to_dict() for s in query.stream()]


def _outcome(responses: list[requests.Response]) -> tuple[int, set[tuple[int, str]]]:
    ok = sum(r.status_code == 200 for r in responses)
    refused = {(r.status_code, r.json().get("error")) for r in responses if r.status_code != 200}
    return ok, refused


def test_parallel_starts_reserve_exactly_what_the_quota_admits(limits_cloud):
    # Arrange: 8 of 10 MiB held by uploads from yesterday, so two more MiB fit
    cloud = limits_cloud
    user = _user(cloud)
    _seed(cloud, user.uid, 8, MIB, timedelta(days=1), held=True)
    # Act: twenty 1 MiB starts at once
    responses = _parallel(cloud, user, [_file(MIB)] * PARALLEL)
    # Assert: exactly two got a session, the others a reason
    ok, refused = _outcome(responses)
    assert (ok, refused) == (2, {(429, "quota_exceeded")})
    assert len(_records(cloud, user.uid)) == 2


def test_parallel_starts_respect_the_hourly_byte_rate(limits_cloud):
    cloud = limits_cloud
    user = _user(cloud)

    responses = _parallel(cloud, user, [_file(MIB)] * PARALLEL)

    ok, refused = _outcome(responses)
    assert (ok, refused) == (5, {(429, "byte_rate_limited")})
    assert len(_records(cloud, user.uid)) == 5


def test_parallel_starts_respect_the_hourly_file_rate(limits_cloud):
    # Arrange: 45 small uploads started ten minutes ago; 5 more files fit in the hour
    cloud = limits_cloud
    user = _user(cloud)
    _seed(cloud, user.uid, 45, 100, timedelta(minutes=10), held=True)

    responses = _parallel(cloud, user, [_file(100)] * PARALLEL)

    ok, refused = _outcome(responses)
    assert (ok, refused) == (5, {(429, "rate_limited")})
    assert len(_records(cloud, user.uid)) == 5


def test_quota_released_by_a_deletion_or_failure_is_available_again(limits_cloud):
    # Arrange: the quota is full; then a study deletion (or a failed upload) releases 3 MiB
    # by clearing counts_toward_quota on its record, as pacs.studies.deletion does
    cloud = limits_cloud
    user = _user(cloud)
    _seed(cloud, user.uid, 10, MIB, timedelta(days=1), held=True)
    assert _post(cloud, user, _file(MIB)).json()["error"] == "quota_exceeded"
    fs = cloud.clients().firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    held = fs.collection("uploads").where(filter=FieldFilter("owner", "==", user.uid)).limit(3)
    for snap in held.stream():
        snap.reference.update({"counts_toward_quota": False})
    # Act
    responses = _parallel(cloud, user, [_file(MIB)] * 6)
    # Assert
    assert _outcome(responses) == (3, {(429, "quota_exceeded")})


def test_a_batch_reserves_all_of_its_files_or_none(limits_cloud):
    cloud = limits_cloud
    user = _user(cloud)
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()

    too_many_bytes = _post(cloud, user, {"files": [_file(MIB, f"{i}.dcm") for i in range(6)]})
    records_after_refusal = _records(cloud, user.uid)
    batch = _post(cloud, user, {"files": [_file(len(ct), f"ct/{i}.dcm") for i in range(4)]
                                + [_file(MIB, "big.dcm")]})

    assert too_many_bytes.status_code == 429
    assert too_many_bytes.json()["error"] == "byte_rate_limited"
    assert records_after_refusal == []
    assert batch.status_code == 200, batch.text
    started = batch.json()["uploads"]
    assert [s["object"] for s in started] == [f"{user.uid}/{s['upload_id']}" for s in started]
    records = {r["object"]: r for r in _records(cloud, user.uid)}
    assert [records[s["object"]]["filename"] for s in started] == [
        "ct/0.dcm", "ct/1.dcm", "ct/2.dcm", "ct/3.dcm", "big.dcm"]
    # Every session is a real one: the file sent through it is ingested.
    put_session(started[2]["session_url"], ct)
    assert wait_final(cloud, started[2]["upload_id"])["status"] == "complete"


def test_parallel_batches_reserve_exactly_what_the_rate_admits(limits_cloud):
    # 12 batches of two 512 KiB files at once against 5 MiB an hour: exactly 5 batches
    cloud = limits_cloud
    user = _user(cloud)
    body = {"files": [_file(MIB // 2, "a.dcm"), _file(MIB // 2, "b.dcm")]}

    responses = _parallel(cloud, user, [body] * 12)

    assert _outcome(responses) == (5, {(429, "byte_rate_limited")})
    assert len(_records(cloud, user.uid)) == 10


def test_batches_are_bounded_in_files_and_bytes(limits_cloud):
    cloud = limits_cloud
    user = _user(cloud)

    too_many = _post(cloud, user, {"files": [_file(10)] * (BATCH_MAX + 1)})
    empty = _post(cloud, user, {"files": []})
    huge = requests.post(cloud.urls["create-upload"] + "/", headers=user.headers(), timeout=60,
                         json={"files": [_file(10, "x" * 1000)] * 2000})

    assert (too_many.status_code, too_many.json()["error"]) == (400, "too_many_files")
    assert (empty.status_code, empty.json()["error"]) == (400, "no_files")
    assert (huge.status_code, huge.json()["error"]) == (413, "body_too_large")
    assert _records(cloud, user.uid) == []


def test_no_upload_starts_once_the_erasure_marker_exists(limits_cloud):
    # Arrange: the erasure's first step, the marker (the token stays valid, so only the
    # marker can refuse)
    from pacs.privacy import erasure

    cloud = limits_cloud
    user = _user(cloud)
    clients = cloud.clients()
    erasure.write_marker(clients.firestore, clients.settings, user.uid, "user_request",
                         datetime.now(UTC))
    # Act
    single = _post(cloud, user, _file(100))
    batch = _post(cloud, user, {"files": [_file(100), _file(200)]})
    # Assert
    for resp in (single, batch):
        assert (resp.status_code, resp.json()["error"]) == (403, "erasure_in_progress")
    from google.cloud.firestore_v1.base_query import FieldFilter

    uploads = clients.firestore.collection("uploads").where(
        filter=FieldFilter("owner", "==", user.uid))
    assert list(uploads.stream()) == []
    assert list(clients.storage.list_blobs(cloud.buckets["uploads"], prefix=f"{user.uid}/")) == []


def test_the_usage_document_is_in_the_personal_data_registry(limits_cloud):
    # The one document create_upload adds per user: the export finds it, the erasure
    # deletes it (both go through the registry's location).
    from pacs.privacy.personal_data import Subject, by_name

    cloud = limits_cloud
    user = _user(cloud)
    assert _post(cloud, user, _file(100)).status_code == 200
    subject = Subject(cloud.clients(), user.uid)
    location = by_name("upload_usage")

    found = [snap.to_dict() for snap in location.find(subject)]
    deleted = location.delete(subject)

    assert [doc["owner"] for doc in found] == [user.uid] and location.export
    assert deleted == 1 and list(location.find(subject)) == []


# --- The CLI: a folder is started in batches ----------------------------------------------

PACS = str(Path(sys.executable).parent / "pacs")


def _cli(cloud: LocalCloud, home: Path, user: User, *args: str) -> tuple[int, dict]:
    env = cloud.cli_env(home)
    login = subprocess.run([PACS, "login", "--email", user.email, "--password", user.password,
                            "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert login.returncode == 0, login.stdout + login.stderr
    proc = subprocess.run([PACS, *args, "--json", "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, json.loads(proc.stdout)


def test_the_cli_starts_a_folder_in_one_request(cloud, tmp_path):
    # Arrange: 30 slices, a text file (refused by ingest) and an empty file (by create_upload)
    user = cloud.create_user(profile=True)
    folder = tmp_path / "series"
    write_series(folder, 30)
    (folder / "notes.txt").write_text("not dicom")
    (folder / "empty.dcm").write_bytes(b"")
    # Act
    code, answer = _cli(cloud, tmp_path / "home", user, "upload", str(folder))
    # Assert
    by_name = {Path(u["path"]).name: u for u in answer["uploads"]}
    assert code == 1 and by_name["empty.dcm"]["error"] == "bad_size"
    started = [u for name, u in by_name.items() if name != "empty.dcm"]
    assert len(started) == 31 and all("upload_id" in u for u in started)
    fs = cloud.clients().firestore
    batches = {fs.collection("uploads").document(u["upload_id"]).get().get("batch")
               for u in started}
    assert len(batches) == 1 and None not in batches
    assert wait_final(cloud, by_name["IM00030.dcm"]["upload_id"])["status"] == "complete"


def test_the_cli_reports_the_hourly_byte_limit_for_each_file(limits_cloud, tmp_path):
    cloud = limits_cloud
    user = _user(cloud)
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(6):
        (folder / f"part{i}.bin").write_bytes(os.urandom(MIB))

    code, answer = _cli(cloud, tmp_path / "home", user, "upload", str(folder))

    assert code == 1
    assert [u["error"] for u in answer["uploads"]] == ["byte_rate_limited"] * 6
    assert "last hour" in answer["uploads"][0]["message"]
    assert _records(cloud, user.uid) == []
