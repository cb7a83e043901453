"""The uploader (``pacs_cli.uploader``) against the real Cloud Storage emulator
(fake-gcs-server, started for this module): a multi-chunk upload yields identical bytes,
and its finalizing status query (its issue #2354) is detected as a partial object, not
taken for success.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest
import requests
from pacs_cli.uploader import DICOM, UploadError, upload_file

from localcloud.stack import free_port
from tests.uploader_helpers import KIB256, dicom_bytes, sha256_file, write

pytestmark = pytest.mark.usefixtures("no_sleep")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    from localcloud.emulators import fake_gcs_binary

    port = free_port()
    root = tmp_path_factory.mktemp("gcs")
    log = open(root.parent / f"fake-gcs-{port}.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    proc = subprocess.Popen(
        [str(fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-external-url", f"http://127.0.0.1:{port}", "-backend", "filesystem",
         "-filesystem-root", str(root), "-log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/storage/v1/b", timeout=1)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("fake-gcs-server did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def bucket(emulator, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    name = f"uploads-{uuid.uuid4().hex[:12]}"
    resp = requests.post(f"{emulator}/storage/v1/b", params={"project": "demo-x"},
                         json={"name": name}, timeout=10)
    assert resp.status_code == 200, resp.text
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    client = storage.Client(project="demo-x", credentials=AnonymousCredentials())
    return client.bucket(name)


def _emulator_start_upload(bucket):
    def start_upload(request: dict) -> dict:
        upload_id = uuid.uuid4().hex
        name = f"uploads/{upload_id}/{request['filename']}"
        session_url = bucket.blob(name).create_resumable_upload_session(
            size=request["size"], content_type=request["content_type"])
        return {"upload_id": upload_id, "session_url": session_url, "object": name,
                "bucket": bucket.name}
    return start_upload


def test_emulator_multi_chunk_upload_is_byte_identical(tmp_path, bucket):
    path = tmp_path / "big.dcm"
    with open(path, "wb") as f:  # ~20 MB, not a multiple of the chunk size
        f.write(b"\0" * 128 + b"DICM")
        for _ in range(20):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(12345))
    started: list[dict] = []
    start = _emulator_start_upload(bucket)

    def start_upload(request):
        answer = start(request)
        started.append(answer)
        return answer

    seen: list[int] = []
    store = tmp_path / "uploads.json"
    upload_id = upload_file(path, start_upload, chunk_size=1 << 20, progress=seen.append,
                            session_store=store)
    assert upload_id == started[0]["upload_id"]
    size = path.stat().st_size
    assert sum(seen) == size and len(seen) == 21
    blob = bucket.get_blob(started[0]["object"])
    assert blob.size == size and blob.content_type == DICOM
    out = tmp_path / "downloaded"
    blob.download_to_filename(str(out))
    assert sha256_file(out) == sha256_file(path)
    assert json.loads(store.read_text())["uploads"] == {}


class _DropOnce(requests.Session):
    """Fails the chunk PUT starting at ``at`` once, before it leaves the client."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def put(self, url, data=None, **kwargs):
        content_range = kwargs.get("headers", {}).get("Content-Range", "")
        if self.at is not None and content_range.startswith(f"bytes {self.at}-"):
            self.at = None
            raise requests.ConnectionError("simulated dropped connection")
        return super().put(url, data=data, **kwargs)


def test_emulator_finalizing_status_query_is_detected(tmp_path, bucket):
    """fake-gcs-server finalizes the object on a status query (its issue #2354), so a
    resume after an interruption cannot complete there; the uploader must report the
    partial object instead of success. (Against real Cloud Storage, and FakeGCS above,
    the same interruption resumes.)"""
    path = write(tmp_path / "img.dcm", dicom_bytes(4 * KIB256 + 10))
    store = tmp_path / "uploads.json"
    with pytest.raises(UploadError) as err:
        upload_file(path, _emulator_start_upload(bucket), chunk_size=KIB256,
                    http=_DropOnce(at=2 * KIB256), session_store=store)
    assert err.value.code == "partial_object"
    assert f"{2 * KIB256} of {path.stat().st_size}" in str(err.value)
    assert json.loads(store.read_text())["uploads"] == {}  # nothing left to resume
