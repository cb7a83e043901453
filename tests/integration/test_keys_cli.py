"""``pacs keys create|list|revoke`` and ``pacs token`` against the local cloud: the key and
the token each open DICOMweb; a revoked key is refused at once; the export lists the key's
metadata and never its hash."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.localcloud

PACS = str(Path(sys.executable).parent / "pacs")


def run(env: dict[str, str], *args: str) -> tuple[int, dict]:
    proc = subprocess.run([PACS, *args, "--json"], env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_keys_and_token_commands_end_to_end(cloud_env, tmp_path):
    cloud = cloud_env
    env = cloud.cli_env(tmp_path / "home")
    user = cloud.create_user(profile=True)
    studies = f"{cloud.urls['dicomweb']}/studies"
    assert run(env, "login", "--email", user.email, "--password", user.password)[0] == 0

    code, body = run(env, "token")
    assert code == 0 and body["id_token"].count(".") == 2
    resp = requests.get(studies, headers={"Authorization": f"Bearer {body['id_token']}"},
                        timeout=60)
    assert resp.status_code == 200 and resp.json() == []

    code, created = run(env, "keys", "create", "--name", "nightly script", "--scope",
                        "read", "--days", "7")
    assert code == 0 and created["key"].startswith("pacsk_"), created
    bearer = {"Authorization": f"Bearer {created['key']}"}
    assert requests.get(studies, headers=bearer, timeout=60).status_code == 200
    code, listed = run(env, "keys", "list")
    assert code == 0
    [row] = listed["keys"]
    assert row["name"] == "nightly script" and row["status"] == "active"
    assert row["last_used_at"] and "key" not in row and "key_hash" not in row

    code, body = run(env, "keys", "create", "--name", "too long", "--days", "400")
    assert code != 0 and body["error"] == "bad_expires_in_days"

    archive = tmp_path / "export.zip"
    code, body = run(env, "privacy", "export", "--wait", "--out", str(archive))
    assert code == 0, body
    with zipfile.ZipFile(archive) as zf:
        lines = zf.read("firestore/api_keys.jsonl").decode().splitlines()
    [exported] = [json.loads(line)["data"] for line in lines]
    assert exported["name"] == "nightly script" and exported["scope"] == "read"
    assert "key_hash" not in exported and created["key"].split("_", 2)[2] not in lines[0]

    code, body = run(env, "keys", "revoke", created["key_id"])
    assert code == 0 and body["status"] == "revoked"
    resp = requests.get(studies, headers=bearer, timeout=60)
    assert resp.status_code == 401 and resp.json()["error"] == "key_revoked"
    code, body = run(env, "keys", "revoke", "0" * 20)
    assert code != 0 and body["error"] == "not_found"
