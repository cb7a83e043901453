"""Issue 14, item 1, on the local cloud.

Item 1: ``POST /profile {"adult": false}`` never erases an account that has a profile (the
answer is the profile, unchanged); for an account without one it starts the minor erasure
only for a recent sign-in, like every erasure a user starts, and each erasure records who
started it and on what authority.

Tokens are the Auth emulator's; a stale one is the same token with ``auth_time`` moved back
(``privacy_helpers.stale_token``), which is what a token refreshed long after its sign-in is.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from pacs.privacy import erasure

from tests.privacy_helpers import (
    call,
    create_profile,
    ok,
    seed_study,
    stale_token,
    wait_receipt,
    wipe,
)

pytestmark = pytest.mark.localcloud

@pytest.fixture(scope="module", autouse=True)
def _leave_the_project_empty(cloud):
    yield
    wipe(cloud)


def _auth_time(token: str) -> datetime:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return datetime.fromtimestamp(int(claims["auth_time"]), UTC)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _auth_user(cloud, uid):
    from firebase_admin import auth

    return auth.get_user(uid, app=cloud.clients().firebase_app)


# --- Item 1: no erasure of an existing account through the profile ---------------------------

def test_adult_false_with_an_existing_profile_changes_nothing(cloud):
    user = cloud.create_user()
    create_profile(cloud, user, "Long Standing")
    before = ok(call(cloud, "profile", user, "GET"))
    study = seed_study(cloud, user.uid, patient_id="PID-KEEP")
    # Neither a stale token nor a fresh one erases anything: the answer is the profile.
    for token in (stale_token(user, 3000), user.id_token):
        body = ok(call(cloud, "profile", token=token, body={"adult": False}))
        assert body == {"profile": before["profile"], "created": False}
    fs = cloud.clients().firestore
    assert not erasure.pending(fs, cloud.settings(), user.uid)
    assert _auth_user(cloud, user.uid).disabled is False
    assert fs.collection("studies").document(study.study_key).get().exists
    after = ok(call(cloud, "profile", user, "GET"))
    assert after["profile"] == before["profile"] and after["history"] == before["history"]
    assert [r["type"] for r in ok(call(cloud, "requests", user, "GET"))["requests"]] == []


def test_minor_answer_without_a_profile_needs_a_recent_sign_in(cloud):
    user = cloud.create_user()
    resp = call(cloud, "profile", token=stale_token(user, 600), body={"adult": False})
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "recent_sign_in_required"
    fs = cloud.clients().firestore
    assert not erasure.pending(fs, cloud.settings(), user.uid)
    assert _auth_user(cloud, user.uid).disabled is False
    listed = ok(call(cloud, "requests", user, "GET"))["requests"]
    assert [(r["type"], r["status"], r["reason"]) for r in listed] == [
        ("erasure", "rejected", "recent_sign_in_required")]
    # A brand-new sign-up is a recent sign-in: the account goes, as the user's own erasure.
    fresh = cloud.sign_in(user.email, user.password)
    resp = call(cloud, "profile", token=fresh.id_token, body={"adult": False})
    assert resp.status_code == 403 and resp.json()["error"] == "under_18", resp.text
    receipt = wait_receipt(cloud, resp.json()["receipt_id"])
    assert receipt["reason"] == "minor"
    assert receipt["started_by"]["by"] == "user"
    assert _time(receipt["started_by"]["verified_sign_in_at"]) == _auth_time(fresh.id_token)
    assert not fs.collection("users").document(user.uid).get().exists


def test_a_users_erasure_records_the_verified_sign_in_that_started_it(cloud):
    user = cloud.create_user()
    create_profile(cloud, user)
    answer = ok(call(cloud, "requests", user, body={"type": "erasure"}), 202)["request"]
    assert sorted(answer["started_by"]) == ["by", "verified_sign_in_at"]
    assert answer["started_by"]["by"] == "user"
    assert _time(answer["started_by"]["verified_sign_in_at"]) == _auth_time(user.id_token)
    receipt = wait_receipt(cloud, answer["receipt_id"])
    assert receipt["reason"] == "user_request"
    assert receipt["started_by"] == answer["started_by"]
    assert user.uid not in json.dumps(receipt) and user.email not in json.dumps(receipt)
