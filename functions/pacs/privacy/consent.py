"""Analytics consent as a ledger, and the server-side gate on analytics events.

Every decision is appended to ``users/{uid}/consent/{auto-id}`` (purpose ``analytics``,
granted or withdrawn, the policy version it was given under, when, whether share links
were revoked with it); ``users/{uid}.consent`` mirrors the latest decision in the same
write, so the gate reads one document. A consent given under an older policy version
needs renewal: it no longer counts until the user decides again.

An analytics event (:func:`accept_event`) is accepted only with current consent and while
neither the account nor the named study is restricted; it increments a per-day counter by
event name (``analytics_daily/{date}-{shard}``), with no user identifier, so what is stored
is an aggregate from the start. Only the event names of :data:`EVENTS` are accepted:
free-form names could carry personal data.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from pacs import log_events
from pacs.errors import BadRequest, Forbidden, NotFound
from pacs.json_values import plain
from pacs.links import access_log
from pacs.privacy import profile

PURPOSE = "analytics"
LEDGER = "consent"
DAILY = "analytics_daily"
SHARDS = 10
EVENTS = ("page_view", "study_list_viewed", "study_opened", "search_used", "upload_started",
          "share_created", "export_requested")
_KEY = re.compile(r"^[0-9a-f]{32}$")


def state(profile_doc: dict[str, Any] | None, policy_version: str) -> dict[str, Any]:
    """The current analytics consent of a profile document.

    Returns
    -------
    dict
        ``analytics`` (``granted``, ``withdrawn`` or ``not_given``), ``policy_version`` it
        was decided under, ``current_policy_version``, ``needs_renewal`` (granted under an
        older policy), ``active`` (events are accepted), ``decided_at``.
    """
    current = ((profile_doc or {}).get("consent") or {})
    decided = current.get(PURPOSE)
    status = "granted" if decided is True else "withdrawn" if decided is False else "not_given"
    needs_renewal = status == "granted" and current.get("policy_version") != policy_version
    return {"analytics": status, "policy_version": current.get("policy_version"),
            "current_policy_version": policy_version, "needs_renewal": needs_renewal,
            "active": status == "granted" and not needs_renewal,
            "decided_at": plain(current.get("at"))}


def ledger(firestore: Any, uid: str, limit: int = 200) -> list[dict[str, Any]]:
    """The ledger, newest first."""
    from google.cloud import firestore as gfs

    query = (profile.profile_ref(firestore, uid).collection(LEDGER)
             .order_by("at", direction=gfs.Query.DESCENDING).limit(limit))
    return [{"id": s.id, **{k: plain(v) for k, v in (s.to_dict() or {}).items() if k != "owner"}}
            for s in query.stream()]


def record(firestore: Any, uid: str, body: dict[str, Any], policy_version: str,
           client: access_log.ClientInfo, now: datetime) -> dict[str, Any]:
    """Grant or withdraw analytics consent (``{analytics: bool, revoke_shares?: bool}``).

    Withdrawing with ``revoke_shares`` also revokes every live share link of the user.

    Returns
    -------
    dict
        The new :func:`state`, the ledger entry id and ``shares_revoked``.
    """
    analytics = body.get(PURPOSE)
    revoke = body.get("revoke_shares", False)
    if not isinstance(analytics, bool) or not isinstance(revoke, bool):
        raise BadRequest("send analytics: true or false (and revoke_shares: true or false)",
                         code="bad_consent")
    if revoke and analytics:
        raise BadRequest("revoke_shares goes with withdrawing consent", code="bad_consent")
    profile.require(firestore, uid)
    entry = profile.profile_ref(firestore, uid).collection(LEDGER).document()
    batch = firestore.batch()
    batch.set(entry, {"owner": uid, "purpose": PURPOSE, "granted": analytics,
                      "action": "granted" if analytics else "withdrawn",
                      "policy_version": policy_version, "at": now, "revoke_shares": revoke})
    batch.update(profile.profile_ref(firestore, uid), {
        "consent": {PURPOSE: analytics, "policy_version": policy_version, "at": now},
        "updated_at": now})
    batch.commit()
    revoked = revoke_all_shares(firestore, uid, client, now) if revoke else 0
    if revoke:
        entry.update({"shares_revoked": revoked})
    log_events.emit("INFO", "consent_recorded", "consent recorded", uid=uid, purpose=PURPOSE,
                    granted=analytics, shares_revoked=revoked)
    return {**state(profile.load(firestore, uid), policy_version), "ledger_id": entry.id,
            "shares_revoked": revoked}


def revoke_all_shares(firestore: Any, uid: str, client: access_log.ClientInfo,
                      now: datetime) -> int:
    """Revoke every share of the user that is not revoked yet; each gets an access record."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (firestore.collection("shares").where(filter=FieldFilter("owner", "==", uid))
             .where(filter=FieldFilter("revoked", "==", False)))
    revoked = 0
    for snap in query.stream():
        doc = snap.to_dict() or {}
        snap.reference.update({"revoked": True, "revoked_at": now})
        access_log.record(firestore, owner=uid, study_key=doc.get("study_key", ""),
                          kind="share_revoked", actor=uid, actor_type="owner", client=client,
                          at=now, details={"share_id": snap.id, "reason": "consent_withdrawn"})
        revoked += 1
    return revoked


def accept_event(firestore: Any, uid: str, body: dict[str, Any], policy_version: str,
                 now: datetime, shard: int | None = None) -> dict[str, Any]:
    """Count one analytics event, or refuse it (403 with the reason) without storing it.

    Refusals: ``consent_required`` (never given or withdrawn), ``consent_renewal_required``
    (given under an older policy version), ``restricted`` (account or named study).
    """
    from google.cloud import firestore as gfs

    event = body.get("event")
    if event not in EVENTS:
        raise BadRequest("unknown event: one of " + ", ".join(EVENTS), code="unknown_event")
    doc = profile.load(firestore, uid)
    current = state(doc, policy_version)
    if current["analytics"] != "granted":
        raise Forbidden("no analytics consent: nothing is recorded", code="consent_required")
    if current["needs_renewal"]:
        raise Forbidden("the privacy policy changed: renew your consent first",
                        code="consent_renewal_required")
    if (doc or {}).get("restricted") is True:
        raise Forbidden("processing of this account is restricted", code="restricted")
    study_id = body.get("study_id")
    if study_id is not None:
        if not isinstance(study_id, str) or not _KEY.match(study_id):
            raise NotFound("no such study", code="not_found")
        snap = firestore.collection("studies").document(study_id).get(
            field_paths=["owner", "restricted"])
        study = snap.to_dict() if snap.exists else None
        if not study or study.get("owner") != uid:
            raise NotFound("no such study", code="not_found")
        if study.get("restricted") is True:
            raise Forbidden("processing of this study is restricted", code="restricted")
    date = now.strftime("%Y-%m-%d")
    number = secrets.randbelow(SHARDS) if shard is None else shard
    firestore.collection(DAILY).document(f"{date}-{number:02d}").set(
        {"date": date, "counts": {event: gfs.Increment(1)}}, merge=True)
    return {"accepted": True, "event": event}


def daily_counts(firestore: Any, date: str) -> dict[str, int]:
    """The day's totals by event name (sum over the shards)."""
    totals: dict[str, int] = {}
    for number in range(SHARDS):
        snap = firestore.collection(DAILY).document(f"{date}-{number:02d}").get()
        for name, count in ((snap.to_dict() or {}).get("counts") or {}).items():
            totals[name] = totals.get(name, 0) + int(count)
    return totals
