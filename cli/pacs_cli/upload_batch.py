"""Uploading many files (``pacs upload`` of folders and several paths): sessions reserved
a batch at a time, files sent one after another with progress bars, one result per file."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import requests

from pacs_cli.upload_sessions import SessionStore
from pacs_cli.uploader import (
    DEFAULT_CHUNK_SIZE,
    UploadError,
    content_type_of,
    iter_upload_files,
    upload_file,
)


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
                 start_batch: Callable[[list[dict]], list[dict]], store: SessionStore,
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
        reservations = _Reservations(files, sizes, start_batch, SessionStore(session_store),
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
