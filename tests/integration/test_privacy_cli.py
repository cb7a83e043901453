"""``pacs privacy ...`` against the local cloud: profile, consent, rectify, restrict,
export (downloaded and checked), requests, delete with its receipt."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.privacy_helpers import seed_study

pytestmark = [pytest.mark.localcloud, pytest.mark.usefixtures("leave_project_empty")]

PACS = str(Path(sys.executable).parent / "pacs")


def run(env: dict[str, str], *args: str) -> tuple[int, dict]:
    proc = subprocess.run([PACS, *args, "--json"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_privacy_commands_end_to_end(cloud_env, tmp_path):
    cloud = cloud_env
    env = cloud.cli_env(tmp_path / "home")
    user = cloud.create_user()
    study = seed_study(cloud, user.uid, patient_id="PID-CLI")
    assert run(env, "login", "--email", user.email, "--password", user.password)[0] == 0
    code, body = run(env, "privacy", "profile")
    assert code == 0 and body["profile"] is None
    code, body = run(env, "privacy", "profile", "--create", "--adult", "yes",
                     "--display-name", "Cli User")
    assert code == 0 and body["created"] is True
    code, body = run(env, "privacy", "consent", "grant")
    assert code == 0 and body["analytics"] == "granted"
    code, body = run(env, "privacy", "rectify", "--display-name", "Cli Person")
    assert code == 0 and body["changes"]["display_name"]["to"] == "Cli Person"
    code, body = run(env, "privacy", "restrict", "--study", study.study_key)
    assert code == 0 and body["restricted"] is True
    code, body = run(env, "privacy", "restrict", "--study", study.study_key, "--lift")
    assert code == 0 and body["restricted"] is False
    code, body = run(env, "privacy", "consent", "withdraw", "--revoke-shares")
    assert code == 0 and body["analytics"] == "withdrawn"
    archive = tmp_path / "export.zip"
    code, body = run(env, "privacy", "export", "--wait", "--out", str(archive))
    assert code == 0, body
    assert body["request"]["status"] == "completed"
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert len([n for n in zf.namelist() if n.startswith("dicom/")]) == 2
    code, body = run(env, "privacy", "requests")
    assert code == 0
    assert sorted(r["type"] for r in body["requests"]) == [
        "export", "rectification", "restriction", "restriction_lifted"]
    assert all(r["status"] == "completed" and r["due_at"] for r in body["requests"])
    code, body = run(env, "privacy", "delete")
    assert code != 0 and body["error"] == "not_confirmed"
    code, body = run(env, "privacy", "delete", "--yes", "--wait")
    assert code == 0, body
    assert body["receipt"]["status"] == "completed"
    assert body["receipt"]["deleted"]["instance_objects"] == 2
    code, body = run(env, "privacy", "receipt", body["receipt"]["receipt_id"])
    assert code == 0 and body["receipt"]["deleted"]["auth_user"] == 1
    code, body = run(env, "privacy", "requests")
    assert code != 0  # the account is gone
