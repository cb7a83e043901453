"""Rectifying the sign-in email (issue 16, item 7) against the local cloud and the Auth
emulator: the CLI asks, a recent sign-in is required, Firebase's verify-and-change link goes
to the new address, the email changes only when the link is opened, and the next profile
read records the change in the profile's history. The emulator's out-of-band code list
stands in for the mailbox.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from firebase_admin import auth

from tests.privacy_helpers import call, stale_token

pytestmark = pytest.mark.localcloud

PACS = str(Path(sys.executable).parent / "pacs")


def _pacs(env: dict[str, str], *args: str) -> tuple[int, dict]:
    proc = subprocess.run([PACS, *args, "--json"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _mailbox(cloud, old: str, new: str) -> list[dict]:
    host = cloud.env["FIREBASE_AUTH_EMULATOR_HOST"]
    codes = requests.get(f"http://{host}/emulator/v1/projects/{cloud.project}/oobCodes",
                         timeout=30).json()["oobCodes"]
    return [c for c in codes if c.get("email") == old and c.get("newEmail") == new
            and c["requestType"] == "VERIFY_AND_CHANGE_EMAIL"]


def _open_link(cloud, uid: str, mail: dict) -> None:
    """Opening the link: Firebase applies the code (applyActionCode) and the account's email
    becomes the code's new address. The emulator applies codes only in its default project
    (it maps every API key there), and each test session has a project of its own, so the
    change is made here as the code says, through the Admin SDK; the code itself was checked
    above (the account's email, the new address, the request type)."""
    auth.update_user(uid, email=mail["newEmail"], email_verified=True,
                     app=cloud.clients().firebase_app)


def test_the_sign_in_email_changes_once_the_link_sent_to_the_new_address_is_opened(
        cloud, tmp_path):
    # Arrange: a signed-in user of the CLI
    user = cloud.create_user(profile=True)
    new = f"moved-{uuid.uuid4().hex[:10]}@example.test"
    env = cloud.cli_env(tmp_path / "home")
    assert _pacs(env, "login", "--email", user.email, "--password", user.password)[0] == 0
    # Act 1: ask for the change
    code, body = _pacs(env, "privacy", "rectify", "--sign-in-email", new)
    # Assert 1: a rectification request, a link to the new address, nothing changed yet
    assert code == 0, body
    assert body["verification_sent_to"] == new and body["request"]["type"] == "rectification"
    assert body["request"]["status"] == "completed"
    mails = _mailbox(cloud, user.email, new)
    assert len(mails) == 1
    app = cloud.clients().firebase_app
    assert auth.get_user(user.uid, app=app).email == user.email
    # Act 2: the link is opened; the user signs in with the new address
    _open_link(cloud, user.uid, mails[0])
    assert auth.get_user(user.uid, app=app).email == new
    assert _pacs(env, "login", "--email", user.email, "--password", user.password)[0] != 0
    assert _pacs(env, "login", "--email", new, "--password", user.password)[0] == 0
    code, body = _pacs(env, "privacy", "profile")
    # Assert 2: the change is in the history, once; nothing pending
    assert code == 0, body
    assert "pending_sign_in_email" not in body["profile"]
    changes = [h["changes"]["sign_in_email"] for h in body["history"]
               if h["kind"] == "rectified" and "sign_in_email" in h.get("changes", {})]
    assert changes == [{"from": user.email, "to": new}]
    code, again = _pacs(env, "privacy", "profile")
    assert len([h for h in again["history"] if h["kind"] == "rectified"]) == 1


def test_a_stale_sign_in_or_a_taken_address_is_refused_and_nothing_is_sent(cloud):
    # Arrange
    user = cloud.create_user(profile=True)
    other = cloud.create_user()
    new = f"moved-{uuid.uuid4().hex[:10]}@example.test"
    # Act
    stale = call(cloud, "profile/sign-in-email", token=stale_token(user), body={"email": new})
    taken = call(cloud, "profile/sign-in-email", user, body={"email": other.email})
    bad = call(cloud, "profile/sign-in-email", user, body={"email": "not an address"})
    # Assert
    assert stale.status_code == 403 and stale.json()["error"] == "recent_sign_in_required"
    assert taken.status_code == 409 and taken.json()["error"] == "email_taken", taken.text
    assert bad.status_code == 400 and bad.json()["error"] == "bad_email"
    assert _mailbox(cloud, user.email, new) == []
    assert auth.get_user(user.uid, app=cloud.clients().firebase_app).email == user.email


def test_an_account_without_a_profile_cannot_ask(cloud):
    user = cloud.create_user()
    resp = call(cloud, "profile/sign-in-email", user, body={"email": "x@example.test"})
    assert resp.status_code == 403 and resp.json()["error"] == "profile_required"
