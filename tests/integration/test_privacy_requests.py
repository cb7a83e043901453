"""The ``privacy-requests`` function on the local cloud: profiles and the 18+ attestation,
the request lifecycle (statuses, 30-day due date, listing), verified requests (stale
sign-ins refused), rectification, restriction and objection (links and shares refused),
consent gating of analytics, and the rules matrix of the new collections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pacs.privacy import erasure

from tests.privacy_helpers import (
    call,
    create_profile,
    ok,
    seed_study,
    stale_token,
    wait_receipt,
    wait_request,
)
from tests.rules_matrix import (
    assert_owner_reads_only,
    assert_queries,
    assert_reads,
    assert_writes_denied,
    owner_query,
    seed_matrix,
    unfiltered_query,
)

pytestmark = [pytest.mark.localcloud, pytest.mark.usefixtures("leave_project_empty")]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_profile_records_adult_attestation_and_rectification_is_recorded(cloud):
    user = cloud.create_user()
    # Without a profile: nothing, and the attestation is required to create one.
    assert ok(call(cloud, "profile", user, "GET"))["profile"] is None
    resp = call(cloud, "profile", user, body={"display_name": "X"})
    assert resp.status_code == 400 and resp.json()["error"] == "adult_required"
    created = create_profile(cloud, user, "Dr Wrong")
    assert created["created"] is True
    assert created["profile"]["adult_attested"] is True and created["profile"]["adult_attested_at"]
    assert created["profile"]["email"] == user.email
    again = ok(call(cloud, "profile", user, body={"adult": True}))
    assert again["created"] is False  # the attestation is not rewritten
    # Rectification: display name and email, with the change recorded.
    result = ok(call(cloud, "profile", user, "PATCH",
                     {"display_name": "Dr Right", "email": "right@example.test"}))
    assert result["changes"] == {"display_name": {"from": "Dr Wrong", "to": "Dr Right"},
                                 "email": {"from": user.email, "to": "right@example.test"}}
    assert result["request"]["type"] == "rectification"
    assert result["request"]["status"] == "completed"
    shown = ok(call(cloud, "profile", user, "GET"))
    assert shown["profile"]["display_name"] == "Dr Right"
    assert [h["kind"] for h in shown["history"]] == ["rectified", "profile_created"]
    # DICOM content is not rectified here, and bad values are refused (and recorded).
    resp = call(cloud, "profile", user, "PATCH", {"PatientName": "x"})
    assert resp.status_code == 400 and resp.json()["error"] == "bad_fields"
    resp = call(cloud, "profile", user, "PATCH", {"email": "not-an-email"})
    assert resp.status_code == 400 and resp.json()["error"] == "bad_email"
    listed = ok(call(cloud, "requests", user, "GET"))["requests"]
    assert [r["status"] for r in listed if r["type"] == "rectification"].count("rejected") == 2


def test_requests_have_due_date_status_history_and_are_listed_to_their_owner(cloud):
    user, other = cloud.create_user(), cloud.create_user()
    before = datetime.now(UTC)
    answer = ok(call(cloud, "requests", user, body={"type": "export"}), 202)
    request = answer["request"]
    assert request["status"] == "received"
    received = _time(request["received_at"])
    assert before - timedelta(seconds=5) <= received <= datetime.now(UTC) + timedelta(seconds=5)
    assert _time(request["due_at"]) == received + timedelta(days=30)
    assert request["completed_at"] is None
    # The same request again while it is open is answered with the open one.
    assert ok(call(cloud, "requests", user, body={"type": "export"}))["request"]["id"] == \
        request["id"]
    done = wait_request(cloud, user, request["id"])
    assert done["status"] == "completed"
    assert [h["status"] for h in done["history"]] == ["received", "in_progress", "completed"]
    times = [_time(h["at"]) for h in done["history"]]
    assert times == sorted(times) and _time(done["completed_at"]) == times[-1]
    assert _time(done["due_at"]) == received + timedelta(days=30)
    # No link is stored or shown: POST /requests/{id}/download mints one (test_privacy_hardening).
    assert "download_url" not in done["result"] and done["result"]["available_until"]
    # Listed to the owner; another user neither lists nor reads it.
    assert request["id"] in [r["id"] for r in ok(call(cloud, "requests", user, "GET"))["requests"]]
    assert ok(call(cloud, "requests", other, "GET"))["requests"] == []
    resp = call(cloud, f"requests/{request['id']}", other, "GET")
    assert resp.status_code == 404
    assert call(cloud, "requests", None, "GET").status_code == 401
    bad = call(cloud, "requests", user, body={"type": "gossip"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_type"


def test_stale_sign_in_is_refused_for_export_and_erasure_and_recorded(cloud):
    user = cloud.create_user()
    token = stale_token(user, 600)
    for kind in ("export", "erasure"):
        resp = call(cloud, "requests", token=token, body={"type": kind})
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == "recent_sign_in_required"
    # A stale token still reads (only destructive or revealing requests need a fresh one).
    listed = ok(call(cloud, "requests", token=token, method="GET"))["requests"]
    assert sorted((r["type"], r["status"], r["reason"]) for r in listed) == [
        ("erasure", "rejected", "recent_sign_in_required"),
        ("export", "rejected", "recent_sign_in_required")]
    # Nothing ran: no marker, the account is there.
    settings = cloud.settings()
    assert not erasure.pending(cloud.clients().firestore, settings, user.uid)
    # Signing in again makes it a verified request.
    fresh = cloud.sign_in(user.email, user.password)
    assert call(cloud, "requests", fresh, body={"type": "export"}).status_code == 202


def test_under_18_answer_follows_the_erasure_path(cloud):
    from firebase_admin import auth

    user = cloud.create_user()
    resp = call(cloud, "profile", user, body={"adult": False})
    assert resp.status_code == 403 and resp.json()["error"] == "under_18"
    receipt = wait_receipt(cloud, resp.json()["receipt_id"])
    assert receipt["reason"] == "minor" and receipt["status"] == "completed"
    with pytest.raises(auth.UserNotFoundError):
        auth.get_user(user.uid, app=cloud.clients().firebase_app)
    assert not cloud.clients().firestore.collection("users").document(user.uid).get().exists


def _sign_link(cloud, route, user=None, body=None, method="POST"):
    return call(cloud, route, user, method, body, function="sign-link")


def test_restriction_and_objection_stop_links_shares_and_analytics_and_lifting_is_recorded(cloud):
    user = cloud.create_user()
    create_profile(cloud, user)
    ok(call(cloud, "consent", user, body={"analytics": True}))
    study = seed_study(cloud, user.uid)
    share = ok(_sign_link(cloud, "shares", user, {"study_id": study.study_key}))
    ok(_sign_link(cloud, "manifest", user, {"study_id": study.study_key}))
    event = {"event": "study_opened", "study_id": study.study_key}
    ok(call(cloud, "analytics", user, body=event))
    # Study-level restriction.
    result = ok(call(cloud, "restrict", user, body={"study_id": study.study_key}))
    assert result["restricted"] is True and result["changed"] is True
    assert result["request"]["type"] == "restriction"
    assert result["request"]["status"] == "completed"
    resp = _sign_link(cloud, "manifest", user, {"study_id": study.study_key})
    assert resp.status_code == 403 and resp.json()["error"] == "restricted"
    resp = _sign_link(cloud, "shares", user, {"study_id": study.study_key})
    assert resp.status_code == 403 and resp.json()["error"] == "restricted"
    assert _sign_link(cloud, "share/manifest", body={"token": share["token"]}).status_code == 404
    resp = call(cloud, "analytics", user, body=event)
    assert resp.status_code == 403 and resp.json()["error"] == "restricted"
    # The data is kept.
    fs = cloud.clients().firestore
    assert fs.collection("studies").document(study.study_key).get().exists
    # Lifting it is recorded; links work again.
    lifted = ok(call(cloud, "restrict", user, body={"study_id": study.study_key,
                                                    "restricted": False}))
    assert lifted["request"]["type"] == "restriction_lifted"
    ok(_sign_link(cloud, "manifest", user, {"study_id": study.study_key}))
    ok(_sign_link(cloud, "share/manifest", body={"token": share["token"]}))
    # Account-level objection.
    ok(call(cloud, "restrict", user, body={"type": "objection"}))
    resp = _sign_link(cloud, "manifest", user, {"study_id": study.study_key})
    assert resp.status_code == 403 and resp.json()["error"] == "restricted"
    resp = call(cloud, "analytics", user, body={"event": "page_view"})
    assert resp.status_code == 403 and resp.json()["error"] == "restricted"
    ok(call(cloud, "restrict", user, body={"type": "objection", "restricted": False}))
    ok(call(cloud, "analytics", user, body={"event": "page_view"}))
    history = ok(call(cloud, "profile", user, "GET"))["history"]
    kinds = [h["kind"] for h in reversed(history)]
    assert kinds == ["profile_created", "restriction", "restriction_lifted", "objection",
                     "objection_lifted"]
    types = sorted(r["type"] for r in ok(call(cloud, "requests", user, "GET"))["requests"])
    assert types == ["objection", "restriction", "restriction_lifted", "restriction_lifted"]
    # Someone else's study cannot be restricted (and it is recorded as rejected).
    other = cloud.create_user()
    create_profile(cloud, other)
    resp = call(cloud, "restrict", other, body={"study_id": study.study_key})
    assert resp.status_code == 404


def test_analytics_needs_current_consent_and_withdrawal_can_revoke_shares(cloud):
    from pacs.privacy import consent

    user = cloud.create_user()
    fs = cloud.clients().firestore
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    event = {"event": "search_used"}
    resp = call(cloud, "analytics", user, body=event)
    assert resp.status_code == 403 and resp.json()["error"] == "consent_required"
    create_profile(cloud, user)
    resp = call(cloud, "analytics", user, body=event)
    assert resp.status_code == 403 and resp.json()["error"] == "consent_required"
    before = consent.daily_counts(fs, today).get("search_used", 0)
    granted = ok(call(cloud, "consent", user, body={"analytics": True}))
    assert granted["analytics"] == "granted" and granted["active"] is True
    ok(call(cloud, "analytics", user, body=event))
    assert consent.daily_counts(fs, today)["search_used"] == before + 1
    # Only known event names, and the counters hold no user identifier.
    resp = call(cloud, "analytics", user, body={"event": f"viewed_{user.uid}"})
    assert resp.status_code == 400 and resp.json()["error"] == "unknown_event"
    for snap in fs.collection("analytics_daily").stream():
        assert user.uid not in str(snap.to_dict()) and user.email not in str(snap.to_dict())
    # A policy-version bump: the consent on record was given under an older version.
    fs.collection("users").document(user.uid).update({"consent.policy_version": "2020-01-01"})
    state = ok(call(cloud, "consent", user, "GET"))
    assert state["needs_renewal"] is True and state["active"] is False
    resp = call(cloud, "analytics", user, body=event)
    assert resp.status_code == 403 and resp.json()["error"] == "consent_renewal_required"
    ok(call(cloud, "consent", user, body={"analytics": True}))
    ok(call(cloud, "analytics", user, body=event))
    # Withdrawal, with the live share links revoked on request.
    study = seed_study(cloud, user.uid)
    share = ok(_sign_link(cloud, "shares", user, {"study_id": study.study_key}))
    ok(_sign_link(cloud, "share/manifest", body={"token": share["token"]}))
    withdrawn = ok(call(cloud, "consent", user, body={"analytics": False, "revoke_shares": True}))
    assert withdrawn["analytics"] == "withdrawn" and withdrawn["shares_revoked"] == 1
    assert _sign_link(cloud, "share/manifest", body={"token": share["token"]}).status_code == 404
    listed = ok(_sign_link(cloud, "shares", user, method="GET"))["shares"]
    assert [s["status"] for s in listed] == ["revoked"]
    resp = call(cloud, "analytics", user, body=event)
    assert resp.status_code == 403 and resp.json()["error"] == "consent_required"
    ledger = ok(call(cloud, "consent", user, "GET"))["ledger"]
    assert [(e["action"], e["policy_version"]) for e in reversed(ledger)] == [
        ("granted", cloud.settings().policy_version),
        ("granted", cloud.settings().policy_version),
        ("withdrawn", cloud.settings().policy_version)]
    assert ledger[0]["shares_revoked"] == 1


# --- Rules matrix ---------------------------------------------------------------------------

OWNER_READABLE = {
    "privacy_requests": "privacy_requests/{r}",
    "profile": "users/{uid}",
    "profile_history": "users/{uid}/history/{r}",
    "consent_ledger": "users/{uid}/consent/{r}",
}
NOBODY = {
    "erasures": "erasures/{r}",
    "analytics_daily": "analytics_daily/{r}",
}


@pytest.fixture
def seeded_rules(clean_firestore):
    return seed_matrix(clean_firestore, {**OWNER_READABLE, **NOBODY}.values(), keys=("r",))


@pytest.mark.parametrize("row", sorted(OWNER_READABLE))
def test_rules_owner_reads_own_only(seeded_rules, row):
    rules = seeded_rules
    assert_owner_reads_only(rules.cloud, rules.path(OWNER_READABLE[row]), rules.owner, rules.other)


@pytest.mark.parametrize("row", sorted(NOBODY))
def test_rules_no_client_reads_receipts_or_counters(seeded_rules, row):
    rules = seeded_rules
    assert_reads(rules.cloud, rules.path(NOBODY[row]), denied=rules.callers)


@pytest.mark.parametrize("row", sorted({**OWNER_READABLE, **NOBODY}))
def test_rules_no_client_writes(seeded_rules, row):
    rules = seeded_rules
    assert_writes_denied(rules.cloud, rules.path({**OWNER_READABLE, **NOBODY}[row]), (rules.owner,),
                         {"restricted": {"booleanValue": False}})


def test_rules_owner_lists_own_requests_only(seeded_rules):
    rules = seeded_rules
    found = assert_queries(rules.cloud, owner_query("privacy_requests", rules.owner.uid),
                           allowed=(rules.owner,), denied=(rules.other,))
    assert len(found) == 1
    assert_queries(rules.cloud, unfiltered_query("privacy_requests"), denied=(rules.owner,))
