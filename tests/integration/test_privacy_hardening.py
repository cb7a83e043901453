"""Issue 14, items 1 and 7, on the local cloud.

Item 1: ``POST /profile {"adult": false}`` never erases an account that has a profile (the
answer is the profile, unchanged); for an account without one it starts the minor erasure
only for a recent sign-in, like every erasure a user starts, and each erasure records who
started it and on what authority.

Item 7: the export's download URL is never stored, listed or readable through the rules;
``POST /requests/{id}/download`` mints a short-lived one for a recent sign-in only.
Tokens are the Auth emulator's; a stale one is the same token with ``auth_time`` moved back
(``privacy_helpers.stale_token``), which is what a token refreshed long after its sign-in is.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import requests
from pacs.privacy import erasure, jobs
from pacs.privacy import requests as privacy_requests

from tests.privacy_helpers import (
    call,
    create_profile,
    ok,
    seed_study,
    stale_token,
    wait_receipt,
    wait_request,
    wipe,
)
from tests.v4_verifier import BadSignedUrl, public_key_of_key_file, verify

pytestmark = pytest.mark.localcloud

# What a signed URL looks like in any answer or document: neither may appear anywhere.
LINK_MARKS = ("download_url", "X-Goog-Signature", "X-Goog-Credential")


@pytest.fixture(scope="module", autouse=True)
def _leave_the_project_empty(cloud):
    yield
    wipe(cloud)


def _fetch(url: str) -> requests.Response:
    """GET a signed URL as issued (fake-gcs-server serves path-style downloads only to its
    public host: a 404 is asked again naming the default one, same address and query)."""
    resp = requests.get(url, timeout=120)
    if resp.status_code == 404:
        resp = requests.get(url, timeout=120, headers={"Host": "storage.googleapis.com"})
    return resp


def _auth_time(token: str) -> datetime:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return datetime.fromtimestamp(int(claims["auth_time"]), UTC)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _links_in(text: str) -> list[str]:
    return [mark for mark in LINK_MARKS if mark in text]


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


# --- Item 7: the export link ------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(cloud):
    """A user with a seeded study and a completed export (requested with a fresh sign-in)."""
    user = cloud.create_user()
    create_profile(cloud, user)
    seed_study(cloud, user.uid, patient_id="PID-EXPORT")
    request = ok(call(cloud, "requests", user, body={"type": "export"}), 202)["request"]
    done = wait_request(cloud, user, request["id"])
    assert done["status"] == "completed", done
    return user, done


def test_no_download_url_is_stored_listed_or_readable_through_the_rules(cloud, exported):
    user, done = exported
    for token in (stale_token(user, 3000), cloud.sign_in(user.email, user.password).id_token):
        for route in ("requests", f"requests/{done['id']}"):
            resp = call(cloud, route, token=token, method="GET")
            assert resp.status_code == 200, resp.text
            assert _links_in(resp.text) == [], route
    # What the Firestore rules let the owner read directly (document and owner query).
    stale = stale_token(user, 3000)
    resp = cloud.firestore_rest(f"privacy_requests/{done['id']}", stale)
    assert resp.status_code == 200 and _links_in(resp.text) == [], resp.text
    query = {"from": [{"collectionId": "privacy_requests"}],
             "where": {"fieldFilter": {"field": {"fieldPath": "owner"}, "op": "EQUAL",
                                       "value": {"stringValue": user.uid}}}}
    resp = cloud.firestore_query("", query, stale)
    assert resp.status_code == 200 and done["id"] in resp.text and _links_in(resp.text) == []
    # Nor anywhere in the stored document.
    stored = cloud.clients().firestore.collection("privacy_requests").document(done["id"]).get()
    assert _links_in(json.dumps(stored.to_dict(), default=str)) == []
    # What the owner sees instead: the archive's size, checksum and how long it is kept.
    assert done["result"]["size"] > 0 and done["result"]["sha256"]
    available = _time(done["result"]["available_until"])
    completed = _time(done["completed_at"])
    link_time = timedelta(seconds=cloud.settings().export_link_seconds)
    assert completed < available <= completed + link_time
    assert done["result"]["expired"] is False


def test_download_link_needs_a_recent_sign_in_and_is_short_lived(cloud, exported):
    user, done = exported
    route = f"requests/{done['id']}/download"
    resp = call(cloud, route, token=stale_token(user, 600))
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "recent_sign_in_required"
    fresh = cloud.sign_in(user.email, user.password)
    issued = datetime.now(UTC)
    link = ok(call(cloud, route, token=fresh.id_token))
    settings = cloud.settings()
    ttl = min(settings.link_ttl_seconds, settings.recent_signin_seconds)
    key = public_key_of_key_file(cloud.env["PACS_SIGNING_KEY_FILE"])
    verified = verify(link["download_url"], key, now=datetime.now(UTC), max_lifetime=ttl)
    assert verified.lifetime_seconds == ttl
    assert (verified.bucket, verified.object_name, verified.generation) == (
        cloud.buckets["derived"], done["result"]["object"], done["result"]["generation"])
    expires = _time(link["expires_at"])  # no later than the URL's own expiry
    assert expires <= verified.expires_at <= expires + timedelta(seconds=2)
    assert issued - timedelta(seconds=1) < expires - timedelta(seconds=ttl) <= datetime.now(UTC)
    with pytest.raises(BadSignedUrl, match="outside the validity window"):
        verify(link["download_url"], key, now=verified.expires_at)
    # It downloads the archive, whole.
    data = _fetch(link["download_url"]).content
    assert len(data) == done["result"]["size"] == link["size"]
    assert hashlib.sha256(data).hexdigest() == done["result"]["sha256"] == link["sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert len([n for n in zf.namelist() if n.startswith("dicom/")]) == 2
    # Minting stores nothing a stale token could read.
    resp = call(cloud, f"requests/{done['id']}", token=stale_token(user, 600), method="GET")
    assert resp.status_code == 200 and _links_in(resp.text) == []
    stored = cloud.clients().firestore.collection("privacy_requests").document(done["id"]).get()
    assert _links_in(json.dumps(stored.to_dict(), default=str)) == []


def test_download_of_others_unfinished_or_expired_exports_is_refused(cloud, exported):
    user, done = exported
    fs = cloud.clients().firestore
    fresh = cloud.sign_in(user.email, user.password)
    other = cloud.create_user()
    resp = call(cloud, f"requests/{done['id']}/download", other)
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    for bad in ("nope", "a" * 65):
        assert call(cloud, f"requests/{bad}/download", fresh).status_code == 404
    resp = call(cloud, f"requests/{done['id']}/download", fresh, method="GET")
    assert resp.status_code == 400 and resp.json()["error"] == "method_not_allowed"
    stored = fs.collection("privacy_requests").document(done["id"]).get().to_dict()
    now = datetime.now(UTC)

    def variant(request_id: str, **changes) -> str:
        fs.collection("privacy_requests").document(request_id).set({**stored, **changes})
        return request_id

    unfinished = variant("unfinished0", status="in_progress", result=None)
    resp = call(cloud, f"requests/{unfinished}/download", fresh)
    assert resp.status_code == 409 and resp.json()["error"] == "export_not_ready", resp.text
    not_export = variant("notexport0", type="rectification")
    assert call(cloud, f"requests/{not_export}/download", fresh).status_code == 404
    past = variant("pastexport0", result={**stored["result"],
                                          "available_until": now - timedelta(seconds=1)})
    resp = call(cloud, f"requests/{past}/download", fresh)
    assert resp.status_code == 410 and resp.json()["error"] == "export_expired", resp.text
    gone = variant("goneexport0", result={**stored["result"],
                                          "object": f"exports/{user.uid}/goneexport0.zip"})
    resp = call(cloud, f"requests/{gone}/download", fresh)
    assert resp.status_code == 410 and resp.json()["error"] == "export_expired", resp.text
    listed = {r["id"]: r for r in ok(call(cloud, "requests", fresh, "GET"))["requests"]}
    assert listed[past]["result"]["expired"] is True
    assert listed[done["id"]]["result"]["expired"] is False
    for request_id in (unfinished, not_export, past, gone):
        fs.collection("privacy_requests").document(request_id).delete()


def test_an_export_made_before_the_change_still_downloads_and_its_stored_link_goes(
        cloud, exported, cloud_env):
    """Requests written by the previous version hold ``download_url`` and ``expires_at``."""
    user, done = exported
    fs = cloud.clients().firestore
    stored = fs.collection("privacy_requests").document(done["id"]).get().to_dict()
    legacy = {k: v for k, v in stored["result"].items() if k != "available_until"}
    until = datetime.now(UTC) + timedelta(hours=23)
    legacy.update(download_url="https://storage.googleapis.com/b/o?X-Goog-Signature=old",
                  expires_at=until)
    for request_id in ("legacyexport0", "legacyexport1"):
        fs.collection("privacy_requests").document(request_id).set(
            {**stored, "result": legacy})
    fresh = cloud.sign_in(user.email, user.password)
    resp = call(cloud, "requests/legacyexport0", fresh, "GET")
    assert resp.status_code == 200 and _links_in(resp.text) == []
    assert _time(resp.json()["request"]["result"]["available_until"]) == until
    link = ok(call(cloud, "requests/legacyexport0/download", fresh))
    data = _fetch(link["download_url"]).content
    assert hashlib.sha256(data).hexdigest() == stored["result"]["sha256"]
    result = fs.collection("privacy_requests").document("legacyexport0").get().get("result")
    assert "download_url" not in result
    # The scheduled privacy-request housekeeping removes the links nobody asked for since.
    jobs.resume_stalled(cloud.clients(), privacy_requests.utc_now())
    result = fs.collection("privacy_requests").document("legacyexport1").get().get("result")
    assert "download_url" not in result and result["sha256"] == stored["result"]["sha256"]
    for request_id in ("legacyexport0", "legacyexport1"):
        fs.collection("privacy_requests").document(request_id).delete()
