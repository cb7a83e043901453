"""Helpers of the uploader tests (``tests/unit/test_uploader*.py``): files to upload, and
``FakeGCS``, a small HTTP server implementing the resumable session semantics of real Cloud
Storage (308 + ``Range``, status queries that do not finalize, 404 for gone sessions) plus
``create_upload``, that can drop a connection mid-upload, answer 503, or keep fewer bytes
than a chunk carried. The ``gcs`` and ``no_sleep`` fixtures are in ``tests/unit/conftest.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pacs_cli.upload_start import make_start_upload
from pacs_cli.uploader import CHUNK_GRANULARITY

KIB256 = CHUNK_GRANULARITY


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
                    if (not m or int(m.group(3)) != total
                            or len(data) != int(m.group(2)) - int(m.group(1)) + 1):
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
