"""Resumable upload sessions remembered between runs of ``pacs upload``.

A small JSON file keyed by each file's absolute path, checked against its size and mtime,
so an interrupted run continues where Cloud Storage stopped without a new
``create_upload`` call. The file is private (0600, written whole and renamed): a session
URI lets anyone holding it write the object.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

# Cloud Storage keeps a resumable session for a week; a day's margin.
SESSION_MAX_AGE = 6 * 24 * 3600


def default_session_store() -> Path:
    """``~/.config/pacs/uploads.json`` (``PACS_UPLOAD_SESSIONS`` overrides it)."""
    env = os.environ.get("PACS_UPLOAD_SESSIONS")
    return Path(env) if env else Path.home() / ".config" / "pacs" / "uploads.json"


class SessionStore:
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
        self.put_many({key: entry})

    def put_many(self, entries: dict[str, dict]) -> None:
        """Store several entries with one write (a batch of reserved sessions), dropping
        stale ones while at it so the file stays small."""
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
