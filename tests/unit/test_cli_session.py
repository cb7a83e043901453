"""The CLI's session file (ID and refresh tokens) is created 0600: never readable by others,
not even between writing it and a chmod (there is none), whatever the umask."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pacs_cli import session

SECRET = {"uid": "u1", "email": "a@example.test", "id_token": "id-token-value",
          "refresh_token": "refresh-token-value", "expires_at": 4102444800.0}


@pytest.fixture
def session_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "config" / "pacs" / "session.json"
    monkeypatch.setattr(session, "SESSION_FILE", path)
    return path


@pytest.fixture
def no_chmod(monkeypatch):
    """Any chmod after creation is a window where the tokens were readable: forbid it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the session file must be created 0600, not chmod-ed after")

    monkeypatch.setattr(Path, "chmod", refuse)
    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_session_file_is_created_0600(session_file, no_chmod, umask):
    old = os.umask(umask)
    try:
        session._save(SECRET)
    finally:
        os.umask(old)
    assert _mode(session_file) == 0o600
    assert _mode(session_file.parent) == 0o700
    assert json.loads(session_file.read_text()) == SECRET
    assert [p.name for p in session_file.parent.iterdir()] == ["session.json"]  # no temp left


def test_a_world_readable_session_file_is_replaced_by_a_0600_one(session_file, no_chmod):
    session_file.parent.mkdir(parents=True)
    old = os.umask(0)
    try:
        session_file.touch(mode=0o644)  # an older CLI's file, readable by others
        assert _mode(session_file) == 0o644
        session._save(SECRET)
    finally:
        os.umask(old)
    assert _mode(session_file) == 0o600
    assert json.loads(session_file.read_text())["refresh_token"] == "refresh-token-value"
