"""``pacs-admin`` (the installed console script) against the local cloud: an operator finds
an account by email, starts its erasure with a recorded reason and note (no recent sign-in
applies), lists open and overdue requests; every use leaves an audit record naming the
operator and the account only by its keyed hash, which outlives the erasure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from firebase_admin import auth
from pacs import ids

from tests.localcloud_fixture import wait_for
from tests.retention_helpers import doc, now

pytestmark = pytest.mark.localcloud

ADMIN = shutil.which("pacs-admin", path=str(Path(__file__).resolve().parents[2] / ".venv/bin"))


def _admin(cloud, tmp_path, *argv: str) -> subprocess.CompletedProcess:
    env = cloud.cli_env(tmp_path / "home")
    return subprocess.run([ADMIN, *argv], env=env, capture_output=True, text=True, timeout=120)


def _audit(cloud, operator: str) -> list[dict]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = cloud.clients().firestore.collection("operator_audit").where(
        filter=FieldFilter("operator", "==", operator))
    return sorted((s.to_dict() for s in query.stream()), key=lambda d: d["at"])


def test_an_operator_finds_an_account_by_email_and_erases_it_with_a_reason(cloud, tmp_path):
    # Arrange: an adult's account, reported by email as a child's
    user = cloud.create_user(profile=True)
    operator = f"op-{uuid.uuid4().hex[:8]}@clinic.test"
    key = cloud.settings().hash_key
    # Act: find, then erase
    found = _admin(cloud, tmp_path, "--operator", operator, "--json", "find", user.email)
    assert found.returncode == 0, found.stderr
    account = json.loads(found.stdout)
    erased = _admin(cloud, tmp_path, "--operator", operator, "--json", "erase", account["uid"],
                    "--reason", "minor", "--note", "report #42 to privacy@")
    # Assert: the right account, the erasure runs to completion on the operator's authority
    assert account["uid"] == user.uid and account["adult_confirmed"] is True, account
    assert erased.returncode == 0, erased.stderr
    request_id = json.loads(erased.stdout)["request_id"]
    receipt = wait_for(lambda: (r := doc(cloud, f"erasures/{ids.erasure_marker(key, user.uid)}"))
                       and r.get("status") == "completed" and r, timeout=180,
                       what="the operator's erasure to complete")
    assert receipt["reason"] == "minor"
    assert receipt["started_by"] == {"by": "operator", "name": operator,
                                     "note": "report #42 to privacy@"}
    with pytest.raises(auth.UserNotFoundError):
        auth.get_user(user.uid, app=cloud.clients().firebase_app)
    # The audit: both uses, the operator, the keyed hash only; kept after the erasure
    records = _audit(cloud, operator)
    assert [(r["action"], r["target"]) for r in records] == [
        ("find_account", ids.erasure_marker(key, user.uid)),
        ("start_erasure", ids.erasure_marker(key, user.uid))]
    assert records[1]["request_id"] == request_id and records[1]["reason"] == "minor"
    text = json.dumps(records, default=str)
    assert user.uid not in text and user.email not in text


def test_an_operator_lists_open_and_overdue_requests(cloud, tmp_path):
    # Arrange: an overdue export of a user, and one due in 20 days
    user = cloud.create_user(profile=True)
    fs = cloud.clients().firestore
    rows = {}
    for name, due_in in (("late", -timedelta(days=3)), ("calm", timedelta(days=20))):
        ref = fs.collection("privacy_requests").document()
        received = now() + due_in - timedelta(days=30)
        ref.set({"owner": user.uid, "type": "export", "status": "received",
                 "received_at": received, "due_at": received + timedelta(days=30)})
        rows[name] = ref.id
    operator = f"op-{uuid.uuid4().hex[:8]}@clinic.test"
    # Act
    overdue = _admin(cloud, tmp_path, "--operator", operator, "--json", "requests", "--overdue")
    every = _admin(cloud, tmp_path, "--operator", operator, "--json", "requests")
    # Assert
    assert overdue.returncode == 0 and every.returncode == 0, overdue.stderr + every.stderr
    late = [r for r in json.loads(overdue.stdout) if r["request_id"] == rows["late"]]
    assert len(late) == 1 and late[0]["overdue"] is True and late[0]["days_left"] <= -3
    assert rows["calm"] not in overdue.stdout and rows["calm"] in every.stdout
    assert user.uid not in every.stdout  # owners as keyed hashes
    assert [r["action"] for r in _audit(cloud, operator)] == ["list_requests"] * 2


def test_refusals_are_clear_and_audited(cloud, tmp_path):
    # No operator name on the local cloud: refused before anything is read or written
    anonymous = _admin(cloud, tmp_path, "find", "someone@example.test")
    assert anonymous.returncode == 2 and "--operator" in anonymous.stderr
    # An unknown email: not found, and the lookup is still recorded
    operator = f"op-{uuid.uuid4().hex[:8]}@clinic.test"
    missing = _admin(cloud, tmp_path, "--operator", operator, "find",
                     f"nobody-{uuid.uuid4().hex[:8]}@example.test")
    assert missing.returncode == 1 and "no_account" in missing.stderr
    assert [(r["action"], r["found"]) for r in _audit(cloud, operator)] == [("find_account", False)]
    # An erasure without a note is refused
    user = cloud.create_user(profile=True)
    bare = _admin(cloud, tmp_path, "--operator", operator, "erase", user.uid,
                  "--reason", "user_request", "--note", " ")
    assert bare.returncode == 1 and "note_required" in bare.stderr


def test_against_a_project_it_needs_the_operators_google_credentials(tmp_path):
    # Arrange: no Application Default Credentials, no gcloud account, no metadata server
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path),
           "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9",
           "NO_GCE_CHECK": "True"}
    # Act
    proc = subprocess.run([ADMIN, "--project", "pacs-prod-example", "requests"], env=env,
                          capture_output=True, text=True, timeout=120)
    # Assert: refused (exit 2), nothing read, and no fallback to a local identity
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no Google credentials" in proc.stderr
