"""Issue 14, items 1 and 7, through the ``pacs`` command line on the local cloud: a stored
session never erases an account with ``profile --create --adult no``, and downloading an
export needs a recent sign-in (refused with a hint when not at a terminal; at a terminal the
password is asked again and the command carries on). The terminal is a real pseudo-terminal
(``pty.fork``), so ``getpass`` reads from it as it would from a person's."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from pacs.privacy import erasure

from tests.localcloud_fixture import User
from tests.privacy_helpers import seed_study, stale_token, wipe

pytestmark = pytest.mark.localcloud

PACS = str(Path(sys.executable).parent / "pacs")
LINK_MARKS = ("download_url", "X-Goog-Signature", "X-Goog-Credential")


@pytest.fixture(scope="module", autouse=True)
def _leave_the_project_empty(cloud):
    yield
    wipe(cloud)


def run(env: dict[str, str], *args: str) -> tuple[int, dict]:
    proc = subprocess.run([PACS, *args, "--json"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def run_at_terminal(env: dict[str, str], args: list[str], prompt: str, answer: str,
                    timeout: float = 600) -> tuple[int, str]:
    """Run ``pacs`` with a pseudo-terminal as its controlling terminal; type ``answer`` once
    ``prompt`` appears. Returns the exit code and everything written to the terminal."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.execve(PACS, [PACS, *args], env)
    out, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"pacs {args} did not finish: {out.decode()[-2000:]}")
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal (it exited)
                break
            if not chunk:
                break
            out += chunk
            if not answered and prompt.encode() in out:
                os.write(fd, answer.encode() + b"\n")
                answered = True
    finally:
        os.close(fd)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def make_session_stale(env: dict[str, str], user: User) -> None:
    """The stored session's token, with its sign-in ten minutes old (what a token refreshed
    long after ``pacs login`` carries)."""
    path = Path(env["PACS_SESSION_FILE"])
    data = json.loads(path.read_text())
    data["id_token"] = stale_token(User(user.uid, user.email, user.password, data["id_token"],
                                        data["refresh_token"]), 600)
    path.write_text(json.dumps(data))


def check_archive(path: Path, dicoms: int) -> None:
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert len([n for n in zf.namelist() if n.startswith("dicom/")]) == dicoms


def test_profile_adult_no_with_a_stored_session_keeps_the_account(cloud_env, tmp_path):
    cloud = cloud_env
    env = cloud.cli_env(tmp_path / "home")
    user = cloud.create_user()
    assert run(env, "login", "--email", user.email, "--password", user.password)[0] == 0
    code, created = run(env, "privacy", "profile", "--create", "--adult", "yes")
    assert code == 0 and created["created"] is True
    make_session_stale(env, user)
    code, body = run(env, "privacy", "profile", "--create", "--adult", "no")
    assert code == 0, body
    assert body == {"profile": created["profile"], "created": False}
    assert not erasure.pending(cloud.clients().firestore, cloud.settings(), user.uid)
    code, body = run(env, "privacy", "profile")
    assert code == 0 and body["profile"] == created["profile"]


def test_export_download_asks_to_sign_in_again_when_the_sign_in_is_stale(cloud_env, tmp_path):
    cloud = cloud_env
    env = cloud.cli_env(tmp_path / "home")
    user = cloud.create_user()
    seed_study(cloud, user.uid, patient_id="PID-CLI-LINK")
    assert run(env, "login", "--email", user.email, "--password", user.password)[0] == 0
    assert run(env, "privacy", "profile", "--create", "--adult", "yes")[0] == 0
    code, body = run(env, "privacy", "export", "--wait")
    assert code == 0 and body["request"]["status"] == "completed", body
    assert not [m for m in LINK_MARKS if m in json.dumps(body)]
    request_id = body["request"]["id"]
    # Not at a terminal: refused with what to do.
    make_session_stale(env, user)
    archive = tmp_path / "a.zip"
    code, body = run(env, "privacy", "download", request_id, "--out", str(archive))
    assert code != 0 and body["error"] == "recent_sign_in_required", body
    assert "pacs login" in body["message"] and not archive.exists()
    # At a terminal: the password is asked again, and the download goes on.
    code, out = run_at_terminal(env, ["privacy", "download", request_id, "--out", str(archive)],
                                "Password", user.password)
    assert code == 0, out
    assert f"Password for {user.email}" in out and user.password not in out
    check_archive(archive, 2)
    # The same for export --wait --out, whose request itself needs the recent sign-in.
    make_session_stale(env, user)
    second = tmp_path / "b.zip"
    code, out = run_at_terminal(env, ["privacy", "export", "--wait", "--out", str(second)],
                                "Password", user.password)
    assert code == 0, out
    check_archive(second, 2)
    assert not [m for m in LINK_MARKS if m in out]
