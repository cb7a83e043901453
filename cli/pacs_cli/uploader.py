"""Resumable uploads of DICOM files and ZIPs to Cloud Storage, for ``pacs upload``.

Each file is announced to the ``create_upload`` HTTP function (``start_upload``), which
answers with a Google Cloud Storage *resumable upload session URI*; a folder's files are
announced a batch at a time (``start_batch``: one request for up to ``BATCH_FILES`` files,
answered with a session for each, or refused as a whole with the limit's reason). The
bytes then go straight to Cloud Storage through that session, in chunks:

* ``PUT session_url`` with ``Content-Range: bytes a-b/total`` (``a``..``b`` inclusive,
  every chunk but the last a multiple of 256 KiB). ``308`` means "go on": its ``Range:
  bytes=0-n`` header says what the server has persisted (it may be less than what was
  sent; no ``Range`` means nothing). ``200``/``201`` means the object is finalized.
* After a dropped connection, a timeout, a ``429`` or a ``5xx``, the client waits
  (exponential backoff with jitter) and asks the session where it stands with an empty
  ``PUT`` and ``Content-Range: bytes */total``; the answer (``308`` + ``Range``, or
  ``200``/``201`` when already complete) tells it where to resume. ``404``/``410``
  means the session is gone (expired after a week, or cancelled).
* Sessions are remembered in a small JSON file (``session_store``), keyed by the file's
  absolute path and checked against its size and mtime, so an interrupted ``pacs
  upload`` run can be run again and continue where Cloud Storage stopped, without a
  new ``create_upload`` call. The entry goes away when the upload completes. The file is
  private (0600): a session URI lets anyone holding it write the object.
* The finalized object's ``size`` (and ``md5Hash`` when the server returns one) is
  checked against the local file, so a partially finalized object is reported, not
  mistaken for success.

Files are read one chunk at a time (default 8 MiB), never whole.

What the tests cover, and what stays untested because of the emulator
------------------------------------------------------------------------
fake-gcs-server (the local Cloud Storage emulator) implements chunked resumable
uploads (``308`` + ``Range``) but its session *status query* (``PUT`` with ``bytes
*/total``) finalizes the object with the bytes received so far (fake-gcs-server issue
#2354). So against the emulator:

* tested: multi-chunk uploads produce byte-identical objects (sha256), with the right
  content type; and that a status query after an interruption, which finalizes a
  partial object there, is *detected* (``UploadError`` with code ``partial_object``)
  rather than reported as success;
* not testable against the emulator: a real resume after an interruption (dropped
  connection, 5xx, or a second run continuing a stored session) continuing the same
  session to a complete, correct object.

The resume logic is therefore tested against a small fake server in the tests that
implements the Cloud Storage resumable semantics (``308`` + ``Range``, persisting less
than a chunk, status queries that do not finalize, ``404`` for gone sessions) and
drops the connection mid-upload. Real Cloud Storage itself is not exercised by the
tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import requests

DICOM = "application/dicom"
ZIP = "application/zip"
OCTET_STREAM = "application/octet-stream"

CHUNK_GRANULARITY = 256 * 1024
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
# Cloud Storage keeps a resumable session for a week; older stored sessions are dropped.
SESSION_MAX_AGE = 6 * 24 * 3600
DEFAULT_TIMEOUT = (10.0, 300.0)  # (connect, read) seconds per request

_RANGE_RE = re.compile(r"^bytes=0-(\d+)$")
_RETRY_STATUS = {429, 500, 502, 503, 504}
# create_upload's 429 reasons that a retry within seconds cannot change.
LIMIT_CODES = ("quota_exceeded", "rate_limited", "byte_rate_limited")
_NOT_RESUMABLE = {"partial_object", "checksum_mismatch", "bad_response", "file_changed"}
_sleep = time.sleep  # tests replace it


class UploadError(Exception):
    """An upload that failed; ``code`` is a short machine-readable reason."""

    def __init__(self, message: str, code: str = "upload_failed") -> None:
        super().__init__(message)
        self.code = code


class _SessionGone(Exception):
    """The resumable session answered 404/410: expired or cancelled."""


# --- files -----------------------------------------------------------------------------


def content_type_of(path: str | os.PathLike) -> str:
    """``application/dicom`` (``DICM`` at offset 128), ``application/zip`` (``PK\\x03\\x04``)
    or ``application/octet-stream``, by the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(132)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return DICOM
    if head.startswith(b"PK\x03\x04"):
        return ZIP
    return OCTET_STREAM


def iter_upload_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The files to upload: each file as given (ZIPs included, not unpacked); each folder
    walked recursively, sorted, skipping hidden files and folders (names starting with a
    dot) and anything not a regular file. Duplicates are dropped, order is kept.
    Raises ``FileNotFoundError`` for a path that does not exist."""
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found: list[Path] = []
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if name.startswith("."):
                        continue
                    candidate = Path(dirpath) / name
                    if candidate.is_file():
                        found.append(candidate)
            for candidate in sorted(found, key=lambda p: p.relative_to(path).parts):
                add(candidate)
        elif path.is_file():
            add(path)
        elif path.exists():
            raise UploadError(f"not a regular file or folder: {path}", code="bad_path")
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return out


# --- the create_upload call --------------------------------------------------------------


def _limit(resp: requests.Response) -> bool:
    """A 429 for a quota or an hourly rate (not worth retrying within seconds)."""
    if resp.status_code != 429:
        return False
    try:
        return resp.json().get("error") in LIMIT_CODES
    except (ValueError, AttributeError):
        return False


def _post_create_upload(client: requests.Session, url: str, id_token: str | Callable[[], str],
                        body: dict, what: str, retries: int, backoff: float,
                        timeout: float | tuple[float, float]) -> Any:
    """POST ``body`` to ``create_upload``; retries connection errors, 429 (but a limit's)
    and 5xx; other errors raise ``UploadError`` with the function's ``error`` code and
    ``message``."""
    failures = 0
    while True:
        token = id_token() if callable(id_token) else id_token
        try:
            resp = client.post(url, json=body, timeout=timeout,
                               headers={"Authorization": f"Bearer {token}"})
        except (requests.ConnectionError, requests.Timeout) as err:
            resp, problem = None, f"{type(err).__name__}: {err}"
        if resp is not None and resp.status_code == 200:
            try:
                return resp.json()
            except ValueError as err:
                raise UploadError("create_upload answered with something not JSON",
                                  code="bad_response") from err
        if resp is not None and (resp.status_code not in _RETRY_STATUS or _limit(resp)):
            code, message = f"http_{resp.status_code}", resp.text[:300]
            try:
                answer = resp.json()
                code = str(answer.get("error", code))
                message = str(answer.get("message", message))
            except (ValueError, AttributeError):
                pass
            raise UploadError(f"create_upload refused {what}: {message}", code=code)
        if resp is not None:
            problem = f"HTTP {resp.status_code}"
        failures += 1
        if failures > retries:
            raise UploadError(f"create_upload failed: {problem}", code="network")
        _backoff(backoff, failures)


def make_start_upload(create_upload_url: str, id_token: str | Callable[[], str], *,
                      http: requests.Session | None = None, retries: int = 3,
                      backoff: float = 1.0,
                      timeout: float | tuple[float, float] = 30.0) -> Callable[[dict], dict]:
    """A ``start_upload`` callable that POSTs to the ``create_upload`` function with
    ``Authorization: Bearer <id token>``. ``id_token`` may be a callable (e.g.
    ``session.id_token``), asked before every call so long runs keep a fresh token.
    Retries connection errors, 429 and 5xx, except a 429 for a quota or an hourly rate
    (:data:`LIMIT_CODES`); other errors raise ``UploadError`` with the function's ``error``
    code and ``message``."""
    client = http or requests.Session()

    def start_upload(request: dict) -> dict:
        return _post_create_upload(client, create_upload_url, id_token, request,
                                   repr(request.get("filename")), retries, backoff, timeout)

    return start_upload


def make_start_batch(create_upload_url: str, id_token: str | Callable[[], str], *,
                     http: requests.Session | None = None, retries: int = 3,
                     backoff: float = 1.0, timeout: float | tuple[float, float] = 120.0
                     ) -> Callable[[list[dict]], list[dict]]:
    """A ``start_batch`` callable: one ``create_upload`` request for several files
    (``{"files": [...]}``), answered with one session per file, in order, for all of them
    or none. Errors as :func:`make_start_upload`."""
    client = http or requests.Session()

    def start_batch(requests_: list[dict]) -> list[dict]:
        answer = _post_create_upload(client, create_upload_url, id_token,
                                     {"files": requests_}, f"{len(requests_)} files", retries,
                                     backoff, timeout)
        sessions = answer.get("uploads") if isinstance(answer, dict) else None
        if not isinstance(sessions, list) or len(sessions) != len(requests_):
            raise UploadError("create_upload answered without a session per file",
                              code="bad_response")
        return sessions

    return start_batch


# --- the session store -------------------------------------------------------------------


def default_session_store() -> Path:
    """``~/.config/pacs/uploads.json`` (``PACS_UPLOAD_SESSIONS`` overrides it)."""
    env = os.environ.get("PACS_UPLOAD_SESSIONS")
    return Path(env) if env else Path.home() / ".config" / "pacs" / "uploads.json"


class _SessionStore:
    """``{"version": 1, "uploads": {abs path: entry}}`` in a private JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None

    def _read(self) -> dict[str, dict]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
            uploads = data.get("uploads", {})
            return uploads if isinstance(uploads, dict) else {}
        except (OSError, ValueError, AttributeError):
            return {}

    def _write(self, uploads: dict[str, dict]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "uploads": uploads}, f, indent=1)
        os.replace(tmp, self.path)

    def get(self, key: str, size: int, mtime_ns: int) -> dict | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        if entry.get("size") != size or entry.get("mtime_ns") != mtime_ns:
            return None
        if time.time() - float(entry.get("created_at", 0)) > SESSION_MAX_AGE:
            return None
        if not entry.get("session_url") or not entry.get("upload_id"):
            return None
        return entry

    def put(self, key: str, entry: dict) -> None:
        if self.path is None:
            return
        uploads = self._read()
        now = time.time()
        # Drop stale entries while at it, so the file stays small.
        uploads = {k: v for k, v in uploads.items()
                   if isinstance(v, dict)
                   and now - float(v.get("created_at", 0)) <= SESSION_MAX_AGE}
        uploads[key] = entry
        self._write(uploads)

    def put_many(self, entries: dict[str, dict]) -> None:
        """Store several entries with one write (a batch of reserved sessions)."""
        if self.path is None or not entries:
            return
        uploads = self._read()
        now = time.time()
        uploads = {k: v for k, v in uploads.items()
                   if isinstance(v, dict)
                   and now - float(v.get("created_at", 0)) <= SESSION_MAX_AGE}
        uploads.update(entries)
        self._write(uploads)

    def drop(self, key: str) -> None:
        if self.path is None:
            return
        uploads = self._read()
        if key in uploads:
            del uploads[key]
            self._write(uploads)


# --- the resumable protocol --------------------------------------------------------------


def _backoff(base: float, failures: int) -> None:
    delay = min(base * 2 ** (failures - 1), 32.0)
    _sleep(delay + random.uniform(0, delay / 4))


def _persisted(resp: requests.Response) -> int:
    """Bytes the server has, from a 308's ``Range: bytes=0-n`` (none when absent)."""
    header = resp.headers.get("Range")
    if not header:
        return 0
    match = _RANGE_RE.match(header.strip())
    if not match:
        raise UploadError(f"unexpected Range header from Cloud Storage: {header!r}",
                          code="bad_response")
    return int(match.group(1)) + 1


class _Uploader:
    def __init__(self, f: IO[bytes], path: Path, session_url: str, size: int,
                 content_type: str, chunk_size: int, http: requests.Session,
                 progress: Callable[[int], None] | None, retries: int, backoff: float,
                 timeout: float | tuple[float, float]) -> None:
        self.f, self.path, self.url, self.size = f, path, session_url, size
        self.content_type, self.chunk_size, self.http = content_type, chunk_size, http
        self.progress, self.retries = progress, retries
        self.backoff, self.timeout = backoff, timeout
        self.reported = 0  # bytes reported to ``progress``
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.hashed = 0  # bytes of the file fed to ``md5``

    def _report(self, persisted: int) -> None:
        if persisted > self.reported:
            if self.progress is not None:
                self.progress(persisted - self.reported)
            self.reported = persisted

    def _hash_payload(self, start: int, payload: bytes) -> None:
        """Feed ``md5`` from a chunk about to be sent, when it extends what is hashed."""
        if start <= self.hashed < start + len(payload):
            self.md5.update(payload[self.hashed - start:])
            self.hashed = start + len(payload)

    def _hash_until(self, end: int) -> None:
        """Feed ``md5`` from the file up to ``end`` (after a resume skipped bytes)."""
        if self.hashed < end:
            self.f.seek(self.hashed)
            while self.hashed < end:
                block = self.f.read(min(self.chunk_size, end - self.hashed))
                if not block:
                    raise UploadError(f"{self.path} shrank during the upload", code="file_changed")
                self.md5.update(block)
                self.hashed += len(block)

    def _status(self) -> requests.Response:
        return self.http.put(self.url, data=b"", timeout=self.timeout, allow_redirects=False,
                             headers={"Content-Range": f"bytes */{self.size}"})

    def _send(self, offset: int) -> requests.Response:
        if self.size == 0:
            return self.http.put(self.url, data=b"", timeout=self.timeout, allow_redirects=False,
                                 headers={"Content-Range": "bytes */0",
                                          "Content-Type": self.content_type})
        self.f.seek(offset)
        payload = self.f.read(min(self.chunk_size, self.size - offset))
        if not payload:
            raise UploadError(f"{self.path} shrank during the upload", code="file_changed")
        end = offset + len(payload) - 1
        self._hash_payload(offset, payload)
        # Content-Type on every chunk, as google-resumable-media does: real Cloud Storage
        # keeps the session's type, fake-gcs-server takes it from here.
        # allow_redirects=False: 308 is Cloud Storage's "resume incomplete", not a redirect.
        headers = {"Content-Range": f"bytes {offset}-{end}/{self.size}",
                   "Content-Type": self.content_type}
        return self.http.put(self.url, data=payload, timeout=self.timeout, allow_redirects=False,
                             headers=headers)

    def _finished(self, resp: requests.Response) -> None:
        """Check the finalized object against the file."""
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if "size" in body and int(body["size"]) != self.size:
            raise UploadError(
                f"Cloud Storage finalized {self.path.name} with {body['size']} of {self.size} "
                "bytes (fake-gcs-server does so on a session status query, its issue #2354)",
                code="partial_object")
        if body.get("md5Hash"):
            self._hash_until(self.size)
            local = base64.b64encode(self.md5.digest()).decode()
            if local != body["md5Hash"]:
                raise UploadError(f"checksum mismatch for {self.path.name}: local md5 {local}, "
                                  f"stored {body['md5Hash']}", code="checksum_mismatch")
        self._report(self.size)

    def run(self, ask_first: bool) -> None:
        """Upload until the object is finalized. ``ask_first``: query the session's status
        before sending (a stored session). Raises ``_SessionGone`` on 404/410."""
        offset = 0
        failures = 0
        need_status = ask_first
        while True:
            problem = ""
            try:
                resp = self._status() if need_status else self._send(offset)
            except (requests.ConnectionError, requests.Timeout) as err:
                resp, problem = None, f"{type(err).__name__}: {err}"
            if resp is not None:
                code = resp.status_code
                if code in (200, 201):
                    self._finished(resp)
                    return
                if code == 308:
                    persisted = _persisted(resp)
                    if persisted > self.size:
                        raise UploadError(f"server reports {persisted} bytes of {self.size}",
                                          code="bad_response")
                    sent_chunk, need_status = not need_status, False
                    if persisted > offset:
                        failures = 0
                    elif sent_chunk:  # a chunk went out and nothing more was kept
                        failures += 1
                    offset = persisted
                    self._report(persisted)
                    if offset == self.size:
                        # All bytes are in but no 200 came: ask, which finalizes.
                        need_status = True
                        failures += 1
                    if failures > self.retries:
                        raise UploadError(f"{self.path.name}: the server keeps no more bytes "
                                          f"(stuck at {offset} of {self.size})", code="stalled")
                    continue
                if code in (404, 410):
                    raise _SessionGone(f"upload session answered HTTP {code}")
                if code not in _RETRY_STATUS:
                    raise UploadError(f"Cloud Storage refused {self.path.name}: HTTP {code} "
                                      f"{resp.text[:300]}", code=f"http_{code}")
                problem = f"HTTP {code}"
            failures += 1
            if failures > self.retries:
                raise UploadError(f"giving up on {self.path.name} after {failures} failed "
                                  f"attempts (last: {problem})", code="network")
            _backoff(self.backoff, failures)
            need_status = True


def upload_file(path: str | os.PathLike, start_upload: Callable[[dict], dict], *,
                chunk_size: int = DEFAULT_CHUNK_SIZE,
                progress: Callable[[int], None] | None = None,
                session_store: Path | None = None,
                http: requests.Session | None = None,
                retries: int = 6, backoff: float = 1.0,
                timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> str:
    """Upload one file through a Cloud Storage resumable session; return its upload_id.

    ``start_upload({"filename", "size", "content_type"})`` must return at least
    ``{"upload_id", "session_url"}`` (see ``make_start_upload``); it is not called when
    ``session_store`` holds an unfinished session for this file (same absolute path, size
    and mtime), which is resumed instead; a stored session that is gone (404/410) is
    replaced by a new one. ``progress(n)`` is called with each increment of bytes Cloud
    Storage has confirmed. ``chunk_size`` must be a multiple of 256 KiB. Connection
    errors, timeouts, 429 and 5xx are retried up to ``retries`` times in a row (backoff
    ``backoff``, doubling, capped at 32 s) resuming from what the server has persisted.
    """
    if chunk_size <= 0 or chunk_size % CHUNK_GRANULARITY:
        raise ValueError(f"chunk_size must be a positive multiple of {CHUNK_GRANULARITY} bytes")
    path = Path(path)
    client = http or requests.Session()
    store = _SessionStore(session_store)
    key = str(path.resolve())
    stat = path.stat()
    size, mtime_ns = stat.st_size, stat.st_mtime_ns
    content_type = content_type_of(path)

    with open(path, "rb") as f:
        def run(session_url: str, ctype: str, ask_first: bool) -> None:
            try:
                _Uploader(f, path, session_url, size, ctype, chunk_size, client, progress,
                          retries, backoff, timeout).run(ask_first)
            except _SessionGone:
                store.drop(key)
                raise
            except UploadError as err:
                if err.code in _NOT_RESUMABLE or err.code.startswith("http_"):
                    store.drop(key)  # nothing left to resume
                raise
            store.drop(key)

        entry = store.get(key, size, mtime_ns)
        if entry is not None:
            # A session reserved by a batch (upload_all) and never sent to is started
            # without a status query; from here on bytes may be out, so a later run asks.
            fresh = entry.get("fresh") is True
            if fresh:
                store.put(key, {**entry, "fresh": False})
            try:
                run(entry["session_url"], entry.get("content_type", content_type), not fresh)
            except _SessionGone:
                pass  # expired or cancelled: start a new one
            else:
                return str(entry["upload_id"])

        answer = start_upload({"filename": path.name, "size": size, "content_type": content_type})
        if (not isinstance(answer, dict) or not answer.get("session_url")
                or not answer.get("upload_id")):
            raise UploadError(f"create_upload answered without a session for {path.name}",
                              code="bad_response")
        store.put(key, {
            "size": size, "mtime_ns": mtime_ns, "content_type": content_type,
            "upload_id": answer["upload_id"], "session_url": answer["session_url"],
            "object": answer.get("object"), "bucket": answer.get("bucket"),
            "created_at": time.time(),
        })
        try:
            run(answer["session_url"], content_type, False)
        except _SessionGone as err:
            raise UploadError(f"the upload session for {path.name} is gone ({err})",
                              code="session_gone") from err
    return str(answer["upload_id"])


# --- many files, with progress bars ------------------------------------------------------


def _progress_bars(total: int, files: int, enabled: bool, stream: IO[str]):
    from tqdm import tqdm

    disabled = not enabled or not getattr(stream, "isatty", lambda: False)()
    overall = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=stream,
                   disable=disabled, position=0, dynamic_ncols=True,
                   desc=f"{files} file{'s' if files != 1 else ''}")
    return tqdm, overall, disabled


# Files per create_upload request of a folder (the function allows up to its
# PACS_UPLOAD_BATCH_MAX, 250 by default; a smaller limit there halves this), and bytes: a
# batch's sessions wait, reserved, while the files before them are sent.
BATCH_FILES = 100
BATCH_BYTES = 2 * 1024**3
# Refusals of one file of a batch: the batch's files are then started one by one, so each
# file gets its own answer.
_PER_FILE_CODES = ("bad_filename", "bad_size", "too_large", "bad_content_type")


def _groups(sizes: Sequence[int], max_files: int, max_bytes: int) -> list[list[int]]:
    """Consecutive indexes, at most ``max_files`` and (unless one file) ``max_bytes``."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, size in enumerate(sizes):
        if current and (len(current) >= max_files or total + size > max_bytes):
            groups.append(current)
            current, total = [], 0
        current.append(index)
        total += size
    if current:
        groups.append(current)
    return groups


class _Reservations:
    """Sessions reserved for a folder's files a batch at a time (``start_batch``), kept in
    the session store as ``fresh`` so an interrupted run resumes them."""

    def __init__(self, files: Sequence[Path], sizes: Sequence[int],
                 start_batch: Callable[[list[dict]], list[dict]], store: _SessionStore,
                 batch_files: int) -> None:
        self.files, self.sizes, self.start_batch, self.store = files, sizes, start_batch, store
        self.batch_files = max(1, batch_files)
        self.answers: dict[int, dict] = {}
        self.errors: dict[int, UploadError] = {}

    def reserve(self, group: list[int]) -> None:
        wanted = []
        for index in group:
            path, size = self.files[index], self.sizes[index]
            try:
                stat = path.stat()
            except OSError:
                continue  # upload_file reports it
            # Empty files go alone (the function refuses them); stored sessions resume.
            if size > 0 and self.store.get(str(path.resolve()), size, stat.st_mtime_ns) is None:
                wanted.append((index, stat.st_mtime_ns))
        for start in range(0, len(wanted), self.batch_files):
            self._reserve(wanted[start:start + self.batch_files])

    def _reserve(self, wanted: list[tuple[int, int]]) -> None:
        if not wanted:
            return
        types = [content_type_of(self.files[i]) for i, _ in wanted]
        try:
            answers = self.start_batch([
                {"filename": self.files[i].name, "size": self.sizes[i], "content_type": t}
                for (i, _), t in zip(wanted, types, strict=True)])
        except UploadError as err:
            if err.code == "too_many_files" and len(wanted) > 1:
                # The function allows fewer per request: halve, and keep the smaller size.
                self.batch_files = max(1, len(wanted) // 2)
                for start in range(0, len(wanted), self.batch_files):
                    self._reserve(wanted[start:start + self.batch_files])
            elif err.code not in _PER_FILE_CODES:
                for i, _ in wanted:
                    self.errors[i] = err
            return  # per-file codes: each file is started alone by upload_file
        entries = {}
        for (index, mtime_ns), ctype, answer in zip(wanted, types, answers, strict=True):
            self.answers[index] = answer
            entries[str(self.files[index].resolve())] = {
                "size": self.sizes[index], "mtime_ns": mtime_ns, "content_type": ctype,
                "upload_id": answer.get("upload_id"), "session_url": answer.get("session_url"),
                "object": answer.get("object"), "bucket": answer.get("bucket"),
                "created_at": time.time(), "fresh": True}
        self.store.put_many(entries)

    def start_upload(self, index: int, fallback: Callable[[dict], dict]
                     ) -> Callable[[dict], dict]:
        """The reserved session first (when the store does not hand it to upload_file),
        then ``fallback`` (a session that turned out gone)."""
        reserved = [self.answers.pop(index)] if index in self.answers else []

        def start(request: dict) -> dict:
            return reserved.pop() if reserved else fallback(request)

        return start


def upload_all(paths: Sequence[str | os.PathLike], start_upload: Callable[[dict], dict], *,
               show_progress: bool = True, stream: IO[str] | None = None,
               session_store: Path | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
               http: requests.Session | None = None, keep_going: bool = True,
               retries: int = 6, backoff: float = 1.0,
               start_batch: Callable[[list[dict]], list[dict]] | None = None,
               batch_files: int = BATCH_FILES,
               batch_bytes: int = BATCH_BYTES) -> list[dict[str, Any]]:
    """Upload every file of ``iter_upload_files(paths)`` one after another, with an overall
    and a per-file progress bar on ``stream`` (default stderr) when ``show_progress`` and
    the stream is a TTY. Returns one dict per file: ``{"path", "size", "content_type",
    "upload_id"}``, or ``{"path", "size", "content_type", "error", "message"}`` for a file
    that failed (the rest still go unless ``keep_going`` is false). Exceptions other than
    ``UploadError``, ``OSError`` and ``requests.RequestException`` (e.g. a failed sign-in
    inside ``start_upload``) propagate.

    With ``start_batch`` (:func:`make_start_batch`), sessions are reserved a batch at a
    time (``batch_files`` files, ``batch_bytes`` bytes) just before the batch's files are
    sent: one request per batch instead of one per file. A batch the function refuses (a
    quota or an hourly rate: all of its files or none) reports its reason for each of its
    files."""
    stream = stream if stream is not None else sys.stderr
    files = iter_upload_files(paths)
    sizes = [f.stat().st_size for f in files]
    client = http or requests.Session()
    reservations = None
    group_at: dict[int, list[int]] = {}
    if start_batch is not None:
        reservations = _Reservations(files, sizes, start_batch, _SessionStore(session_store),
                                     batch_files)
        group_at = {group[0]: group for group in _groups(sizes, batch_files, batch_bytes)}
    tqdm, overall, disabled = _progress_bars(sum(sizes), len(files), show_progress, stream)
    results: list[dict[str, Any]] = []
    try:
        for index, (file, size) in enumerate(zip(files, sizes, strict=True)):
            if reservations is not None and index in group_at:
                reservations.reserve(group_at[index])
            result: dict[str, Any] = {"path": str(file), "size": size}
            bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, file=stream,
                       disable=disabled, position=1, leave=False, dynamic_ncols=True,
                       desc=file.name[:40])
            done = 0

            def progress(n: int, bar=bar) -> None:
                nonlocal done
                done += n
                bar.update(n)
                overall.update(n)

            try:
                result["content_type"] = content_type_of(file)
                start = start_upload
                if reservations is not None:
                    if index in reservations.errors:
                        raise reservations.errors[index]
                    start = reservations.start_upload(index, start_upload)
                result["upload_id"] = upload_file(
                    file, start, chunk_size=chunk_size, progress=progress,
                    session_store=session_store, http=client, retries=retries, backoff=backoff)
            except (UploadError, OSError, requests.RequestException) as err:
                result.setdefault("content_type", None)
                result["error"] = getattr(err, "code", type(err).__name__)
                result["message"] = str(err)
                overall.update(size - done)  # keep the overall bar's total meaningful
                if not disabled:
                    tqdm.write(f"failed: {file}: {err}", file=stream)
            finally:
                bar.close()
            results.append(result)
            if "error" in result and not keep_going:
                break
    finally:
        overall.close()
    return results
