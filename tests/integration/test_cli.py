"""The ``pacs`` console command against the local cloud: signup, login, upload --wait."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

pytestmark = pytest.mark.localcloud
PACS = str(Path(sys.executable).parent / "pacs")


def run(env: dict[str, str], *args: str) -> tuple[int, dict]:
    proc = subprocess.run([PACS, *args, "--json"], env=env, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, json.loads(proc.stdout)


def test_signup_login_and_upload_with_wait(cloud, tmp_path):
    # Arrange
    env = cloud.cli_env(tmp_path / "home")
    email = f"cli-{uuid.uuid4().hex[:8]}@example.test"
    folder = tmp_path / "study"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (folder / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
    (folder / "notes.txt").write_text("not dicom")
    # Act
    code_signup, signup = run(env, "signup", "--email", email, "--password", "secret-pass-1",
                              "--adult", "yes")
    code_login, login = run(env, "login", "--email", email, "--password", "secret-pass-1")
    code_upload, uploaded = run(env, "upload", str(folder), "--wait")
    # Assert
    assert (code_signup, code_login) == (0, 0)
    assert signup["uid"] == login["uid"] and signup["profile_created"] is True
    assert code_upload == 1  # notes.txt is refused, so not every upload succeeded
    by_file = {Path(u["path"]).name: u for u in uploaded["uploads"]}
    assert by_file["CT_small.dcm"]["status"] == "complete"
    assert by_file["MR_small.dcm"]["files"][0]["status"] == "stored"
    assert by_file["notes.txt"]["status"] == "failed"
    assert by_file["notes.txt"]["files"][0]["reason"] == "unknown_type"


def test_wrong_password_and_signed_out_fail_with_json(cloud, tmp_path):
    env = cloud.cli_env(tmp_path / "home")
    code, body = run(env, "login", "--email", "nobody@example.test", "--password", "x")
    assert code != 0 and body["ok"] is False and body["error"] == "auth_failed"
    code, body = run(env, "upload", get_testdata_file("CT_small.dcm"))
    assert code != 0 and body["error"] == "not_signed_in"


def test_signup_as_a_minor_creates_no_account(cloud, tmp_path):
    env = cloud.cli_env(tmp_path / "home")
    email = f"cli-minor-{uuid.uuid4().hex[:8]}@example.test"

    code, body = run(env, "signup", "--email", email, "--password", "secret-pass-1",
                     "--adult", "no")
    code_login, login = run(env, "login", "--email", email, "--password", "secret-pass-1")

    assert code != 0 and body["error"] == "under_18"
    assert code_login != 0 and login["error"] == "auth_failed"
