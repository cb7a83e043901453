"""Issue 14, item 1, through the ``pacs`` command line on the local cloud: a stored session
(its sign-in long past) never erases an account with ``profile --create --adult no``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pacs.privacy import erasure

from tests.localcloud_fixture import User
from tests.privacy_helpers import stale_token, wipe

pytestmark = pytest.mark.localcloud

PACS = str(Path(sys.executable).parent / "pacs")


@pytest.fixture(scope="module", autouse=True)
def _leave_the_project_empty(cloud):
    yield
    wipe(cloud)


def run(env: dict[str, str], *args: str) -> tuple[int, dict]:
    proc = subprocess.run([PACS, *args, "--json"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def make_session_stale(env: dict[str, str], user: User) -> None:
    """The stored session's token, with its sign-in ten minutes old (what a token refreshed
    long after ``pacs login`` carries)."""
    path = Path(env["PACS_SESSION_FILE"])
    data = json.loads(path.read_text())
    data["id_token"] = stale_token(User(user.uid, user.email, user.password, data["id_token"],
                                        data["refresh_token"]), 600)
    path.write_text(json.dumps(data))


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
