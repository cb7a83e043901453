"""The uploader (``pacs_cli.uploader``): file discovery, content types, and the Cloud Storage
resumable upload protocol.

Resume is tested against ``FakeGCS`` below, a small HTTP server implementing the resumable
session semantics of real Cloud Storage (308 + ``Range``, status queries that do not
finalize, 404 for gone sessions) that can drop a connection mid-upload, answer 503, or
keep fewer bytes than a chunk carried. Against the real emulator (fake-gcs-server) the
tests check that a multi-chunk upload yields identical bytes, and that its finalizing
status query (its issue #2354) is detected as a partial object, not taken for success.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from pacs_cli import uploader
from pacs_cli.uploader import (
    CHUNK_GRANULARITY,
    DICOM,
    OCTET_STREAM,
    ZIP,
    UploadError,
    content_type_of,
    iter_upload_files,
    make_start_upload,
    upload_all,
    upload_file,
)

from localcloud.stack import free_port

KIB256 = CHUNK_GRANULARITY


@pytest.fixture(autouse=True)
def _restore_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch):
    """Backoff without waiting; the delays asked for are recorded."""
    delays: list[float] = []
    monkeypatch.setattr(uploader, "_sleep", delays.append)
    return delays


def dicom_bytes(size: int) -> bytes:
    body = os.urandom(max(size - 132, 0))
    return (b"\0" * 128 + b"DICM" + body)[:size]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- a fake Cloud Storage with correct resumable semantics -------------------------------

_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_STATUS = re.compile(r"^bytes \*/(\d+)$")


class FakeGCS:
    """Resumable sessions as Cloud Storage runs them, plus ``create_upload`` at ``/create``.

    Fault injection: ``drop_at`` (a chunk starting at or after this offset gets the
    connection closed without an answer, once, after keeping only its first 256 KiB),
    ``fail_next`` (that many chunk PUTs answered 503), ``keep_less_at`` (the chunk at this
    offset keeps 256 KiB less than it carried, answering 308 with the shorter Range)."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.puts: list[tuple[str, str]] = []  # (session id, Content-Range)
        self.content_types: list[str | None] = []
        self.creates: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.drop_at: int | None = None
        self.fail_next = 0
        self.keep_less_at: int | None = None
        self.create_failures: list[int] = []  # statuses to answer /create with first
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: dict | None = None,
                        headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                fake.auth_headers.append(self.headers.get("Authorization"))
                if fake.create_failures:
                    status = fake.create_failures.pop(0)
                    return self._answer(status, {"error": "busy", "message": "try later"})
                if body.get("filename", "").startswith("refused"):
                    return self._answer(400, {"error": "unsupported_file",
                                              "message": "not a DICOM file"})
                fake.creates.append(body)
                sid = fake.new_session(body["size"])
                self._answer(200, {"upload_id": f"up-{sid}", "session_url": fake.url(sid),
                                   "object": f"uploads/{sid}", "bucket": "fake-bucket"})

            def do_PUT(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sid = self.path.rsplit("/", 1)[-1]
                content_range = self.headers.get("Content-Range", "")
                with fake.lock:
                    fake.puts.append((sid, content_range))
                    session = fake.sessions.get(sid)
                    if session is None:
                        return self._answer(404, {"error": "gone"})
                    total = session["size"]
                    if m := _STATUS.match(content_range):
                        if int(m.group(1)) != total:
                            return self._answer(400, {"error": "bad total"})
                        if total == 0 and not session["done"]:
                            session["done"] = True
                        return self._state(session)
                    m = _RANGE.match(content_range)
                    if not m or int(m.group(3)) != total or len(data) != int(m.group(2)) - int(m.group(1)) + 1:
                        return self._answer(400, {"error": "bad Content-Range"})
                    if session["done"]:
                        return self._state(session)
                    start = int(m.group(1))
                    fake.content_types.append(self.headers.get("Content-Type"))
                    have = len(session["data"])
                    if start > have:
                        return self._answer(400, {"error": "gap"})
                    if fake.drop_at is not None and start >= fake.drop_at:
                        fake.drop_at = None
                        keep = data[:KIB256][have - start:]
                        session["data"] += keep
                        self.close_connection = True
                        return  # no answer at all: the client sees a dropped connection
                    if fake.fail_next:
                        fake.fail_next -= 1
                        return self._answer(503, {"error": "backend error"})
                    new = data[have - start:]
                    last = start + len(data) == total
                    if fake.keep_less_at == start and not last:
                        fake.keep_less_at = None
                        new = new[:-KIB256]
                    session["data"] += new
                    if len(session["data"]) == total:
                        session["done"] = True
                    return self._state(session)

            def _state(self, session: dict) -> None:
                if session["done"]:
                    md5 = base64.b64encode(hashlib.md5(session["data"]).digest()).decode()
                    return self._answer(200, {"size": str(len(session["data"])), "md5Hash": md5})
                have = len(session["data"])
                headers = {"Range": f"bytes=0-{have - 1}"} if have else {}
                return self._answer(308, None, headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, sid: str) -> str:
        return f"{self.base}/upload/{sid}"

    def new_session(self, size: int) -> str:
        sid = uuid.uuid4().hex
        with self.lock:
            self.sessions[sid] = {"size": size, "data": bytearray(), "done": False}
        return sid

    def data(self, upload_id: str) -> bytes:
        return bytes(self.sessions[upload_id.removeprefix("up-")]["data"])

    def start_upload(self, token: str = "tok") -> Callable[[dict], dict]:
        return make_start_upload(f"{self.base}/create", token, backoff=0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gcs():
    fake = FakeGCS()
    yield fake
    fake.close()


# --- files and content types ---------------------------------------------------------


def test_content_type_by_magic_bytes(tmp_path):
    assert content_type_of(write(tmp_path / "a.bin", dicom_bytes(400))) == DICOM
    assert content_type_of(write(tmp_path / "b.dat", b"PK\x03\x04rest")) == ZIP
    assert content_type_of(write(tmp_path / "c.dcm", b"\0" * 200)) == OCTET_STREAM
    assert content_type_of(write(tmp_path / "d", b"DICM")) == OCTET_STREAM
    assert content_type_of(write(tmp_path / "e", b"")) == OCTET_STREAM


def test_iter_upload_files_expands_folders_sorted_skipping_hidden(tmp_path):
    root = tmp_path / "study"
    for rel in ["b/2.dcm", "b/10.dcm", "a.dcm", "c/d/e.dcm", ".hidden.dcm", ".git/x.dcm",
                "b/.DS_Store", "series.zip"]:
        write(root / rel, b"x")
    lone = write(tmp_path / "lone.zip", b"PK\x03\x04")
    files = iter_upload_files([root, lone, root / "a.dcm"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "study/a.dcm", "study/b/10.dcm", "study/b/2.dcm", "study/c/d/e.dcm",
        "study/series.zip", "lone.zip",
    ]
    # an explicitly named hidden file is kept
    assert iter_upload_files([root / ".hidden.dcm"]) == [root / ".hidden.dcm"]
    with pytest.raises(FileNotFoundError):
        iter_upload_files([tmp_path / "missing"])


def test_chunk_size_must_be_a_multiple_of_256_kib(tmp_path, gcs):
    path = write(tmp_path / "x.dcm", dicom_bytes(1000))
    for bad in (0, 1000, KIB256 + 1):
        with pytest.raises(ValueError):
            upload_file(path, gcs.start_upload(), chunk_size=bad)


# --- the resumable protocol against FakeGCS ---------------------------------------------


def test_chunked_upload_is_byte_identical(tmp_path, gcs):
    data = dicom_bytes(5 * KIB256 * 2 + 12345)
    path = write(tmp_path / "img.dcm", data)
    seen: list[int] = []
    upload_id = upload_file(path, gcs.start_upload("secret"), chunk_size=2 * KIB256,
                            progress=seen.append, http=requests.Session())
    assert gcs.data(upload_id) == data
    assert sum(seen) == len(data) and all(n > 0 for n in seen)
    assert gcs.creates == [{"filename": "img.dcm", "size": len(data), "content_type": DICOM}]
    assert gcs.auth_headers == ["Bearer secret"]
    ranges = [r for _, r in gcs.puts]
    assert len(ranges) == 6 and ranges[0] == f"bytes 0-{2 * KIB256 - 1}/{len(data)}"
    assert not any(r.startswith("bytes */") for r in ranges)  # no status query needed
    assert set(gcs.content_types) == {DICOM}


def test_resumes_after_a_dropped_connection(tmp_path, gcs, _no_sleep):
    data = dicom_bytes(8 * KIB256 + 777)
    path = write(tmp_path / "img.dcm", data)
    gcs.drop_at = 4 * KIB256  # the third 2-slot chunk: connection closed, 256 KiB kept
    seen: list[int] = []
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=2 * KIB256,
                            progress=seen.append)
    assert gcs.data(upload_id) == data
    assert sum(seen) == len(data)
    ranges = [r for _, r in gcs.puts]
    total = len(data)
    status_at = ranges.index(f"bytes */{total}")
    assert ranges[status_at - 1] == f"bytes {4 * KIB256}-{6 * KIB256 - 1}/{total}"
    # resumed from what the server kept (5 slots), not from the client's own offset
    assert ranges[status_at + 1] == f"bytes {5 * KIB256}-{7 * KIB256 - 1}/{total}"
    assert len(_no_sleep) == 1


def test_follows_the_range_when_the_server_keeps_less(tmp_path, gcs):
    data = dicom_bytes(6 * KIB256 + 5)
    path = write(tmp_path / "img.dcm", data)
    gcs.keep_less_at = 2 * KIB256
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=2 * KIB256)
    assert gcs.data(upload_id) == data
    ranges = [r for _, r in gcs.puts]
    assert f"bytes {3 * KIB256}-{5 * KIB256 - 1}/{len(data)}" in ranges


def test_retries_5xx_with_exponential_backoff(tmp_path, gcs, _no_sleep):
    data = dicom_bytes(3 * KIB256)
    path = write(tmp_path / "img.dcm", data)
    gcs.fail_next = 3
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=KIB256, backoff=1.0)
    assert gcs.data(upload_id) == data
    assert len(_no_sleep) == 3
    assert 1.0 <= _no_sleep[0] <= 1.25 and 2.0 <= _no_sleep[1] <= 2.5 and 4.0 <= _no_sleep[2] <= 5.0


def test_gives_up_after_the_retries_and_keeps_the_session(tmp_path, gcs):
    path = write(tmp_path / "img.dcm", dicom_bytes(3 * KIB256))
    store = tmp_path / "cfg" / "uploads.json"
    gcs.fail_next = 100
    with pytest.raises(UploadError) as err:
        upload_file(path, gcs.start_upload(), chunk_size=KIB256, retries=2, session_store=store)
    assert err.value.code == "network"
    assert str(path.resolve()) in json.loads(store.read_text())["uploads"]


def test_a_second_run_resumes_the_stored_session(tmp_path, gcs):
    data = dicom_bytes(8 * KIB256 + 99)
    path = write(tmp_path / "img.dcm", data)
    store = tmp_path / "cfg" / "uploads.json"
    gcs.drop_at = 4 * KIB256
    with pytest.raises(UploadError):  # first run: no retries, the dropped connection ends it
        upload_file(path, gcs.start_upload(), chunk_size=2 * KIB256, retries=0,
                    session_store=store)
    entry = json.loads(store.read_text())["uploads"][str(path.resolve())]
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert entry["size"] == len(data) and entry["upload_id"].startswith("up-")

    def no_new_session(request):
        raise AssertionError("a stored session must be resumed, not replaced")

    gcs.puts.clear()
    seen: list[int] = []
    upload_id = upload_file(path, no_new_session, chunk_size=2 * KIB256, session_store=store,
                            progress=seen.append)
    assert upload_id == entry["upload_id"]
    assert gcs.data(upload_id) == data
    assert sum(seen) == len(data)
    ranges = [r for _, r in gcs.puts]
    assert ranges[0] == f"bytes */{len(data)}"
    assert ranges[1].startswith(f"bytes {5 * KIB256}-")
    assert json.loads(store.read_text())["uploads"] == {}


def test_a_stored_session_is_ignored_when_the_file_changed(tmp_path, gcs):
    path = write(tmp_path / "img.dcm", dicom_bytes(3 * KIB256))
    store = tmp_path / "uploads.json"
    gcs.fail_next = 100
    with pytest.raises(UploadError):
        upload_file(path, gcs.start_upload(), chunk_size=KIB256, retries=0, session_store=store)
    gcs.fail_next = 0
    data = dicom_bytes(3 * KIB256)
    path.write_bytes(data)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=KIB256, session_store=store)
    assert len(gcs.creates) == 2
    assert gcs.data(upload_id) == data


def test_a_gone_stored_session_is_replaced(tmp_path, gcs):
    data = dicom_bytes(2 * KIB256 + 1)
    path = write(tmp_path / "img.dcm", data)
    store = tmp_path / "uploads.json"
    gcs.fail_next = 100
    with pytest.raises(UploadError):
        upload_file(path, gcs.start_upload(), chunk_size=KIB256, retries=0, session_store=store)
    gcs.fail_next = 0
    gcs.sessions.clear()  # expired
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=KIB256, session_store=store)
    assert len(gcs.creates) == 2 and gcs.data(upload_id) == data


def test_a_stored_session_that_already_completed_returns_its_id(tmp_path, gcs):
    data = dicom_bytes(KIB256)
    path = write(tmp_path / "img.dcm", data)
    store = tmp_path / "uploads.json"
    sid = gcs.new_session(len(data))
    gcs.sessions[sid].update(data=bytearray(data), done=True)
    st = path.stat()
    uploader._SessionStore(store).put(str(path.resolve()), {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "content_type": DICOM,
        "upload_id": "up-" + sid, "session_url": gcs.url(sid), "created_at": time.time()})
    seen: list[int] = []
    assert upload_file(path, gcs.start_upload(), session_store=store,
                       progress=seen.append) == "up-" + sid
    assert gcs.creates == [] and sum(seen) == len(data)


def test_empty_file(tmp_path, gcs):
    path = write(tmp_path / "empty", b"")
    upload_id = upload_file(path, gcs.start_upload())
    assert gcs.data(upload_id) == b""
    assert [r for _, r in gcs.puts] == ["bytes */0"]


def test_make_start_upload_errors_and_retries(tmp_path, gcs):
    tokens = iter(["t1", "t2", "t3"])
    start = make_start_upload(f"{gcs.base}/create", lambda: next(tokens), backoff=0)
    gcs.create_failures = [503]
    answer = start({"filename": "a.dcm", "size": 1, "content_type": DICOM})
    assert answer["session_url"].startswith(gcs.base) and answer["upload_id"].startswith("up-")
    assert gcs.auth_headers == ["Bearer t1", "Bearer t2"]  # a fresh token for each call
    with pytest.raises(UploadError) as err:
        start({"filename": "refused.txt", "size": 1, "content_type": OCTET_STREAM})
    assert err.value.code == "unsupported_file" and "not a DICOM file" in str(err.value)


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_upload_all_reports_each_file_and_keeps_stdout_clean(tmp_path, gcs, capsys):
    good = write(tmp_path / "in" / "a.dcm", dicom_bytes(KIB256 + 3))
    write(tmp_path / "in" / "refused.txt", b"hello")
    zipped = write(tmp_path / "in" / "z.zip", b"PK\x03\x04" + os.urandom(1000))
    results = upload_all([tmp_path / "in"], gcs.start_upload(), chunk_size=KIB256)
    assert [Path(r["path"]).name for r in results] == ["a.dcm", "refused.txt", "z.zip"]
    assert results[0]["content_type"] == DICOM and gcs.data(results[0]["upload_id"]) == good.read_bytes()
    assert results[1]["error"] == "unsupported_file" and "upload_id" not in results[1]
    assert results[2]["content_type"] == ZIP and gcs.data(results[2]["upload_id"]) == zipped.read_bytes()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # not a TTY: no progress display

    tty = _TTY()
    upload_all([good], gcs.start_upload(), stream=tty)
    assert "1 file" in tty.getvalue() and "B" in tty.getvalue()
    quiet = _TTY()
    upload_all([good], gcs.start_upload(), stream=quiet, show_progress=False)
    assert quiet.getvalue() == ""


def test_upload_all_stops_on_error_when_asked(tmp_path, gcs):
    write(tmp_path / "in" / "refused.txt", b"x")
    write(tmp_path / "in" / "z.dcm", dicom_bytes(300))
    results = upload_all([tmp_path / "in"], gcs.start_upload(), keep_going=False)
    assert len(results) == 1 and results[0]["error"] == "unsupported_file"


# --- against the real emulator (fake-gcs-server) ----------------------------------------




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
