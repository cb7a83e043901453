"""What an operator does for requests that arrive by email (the policy's privacy@ address):
find an account by email, start an erasure with a recorded reason, list open and overdue
requests. ``pacs-admin`` (cli/pacs_admin) is the command; this is its domain code.

An operator is authenticated by their Google credentials (the command's job), never by an
end-user token, and no recent-sign-in rule applies (:class:`pacs.privacy.erasure.StartedBy`
records the operator by name with the reason). Every use — a lookup included — appends an
audit record ``operator_audit/{auto-id}``: who, what, when, and the target as a keyed hash of
its uid (the same pseudonym as the erasure receipt), never the uid or the email, so the
record names nobody once the account is gone and is kept for accountability
(:data:`pacs.privacy.personal_data.KEPT`) until ``expire_at`` (as long as erasure receipts;
a Firestore TTL policy on ``expire_at`` removes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pacs import ids
from pacs.clients import Clients
from pacs.errors import BadRequest, NotFound
from pacs.privacy import erasure
from pacs.privacy import requests as privacy_requests

AUDIT = "operator_audit"
ERASURE_REASONS = ("user_request", "minor")
NOTE_MAX = 500


@dataclass(frozen=True)
class Operator:
    """Who acts: the operator's Google identity (an email, or a name on the local cloud)."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("an operator action names the operator")


def audit(clients: Clients, operator: Operator, action: str, now: datetime,
          uid: str | None = None, **details: Any) -> str:
    """Append one audit record; returns its id. ``uid`` is stored as its keyed hash."""
    target = ids.erasure_marker(clients.settings.hash_key, uid) if uid else None
    ref = clients.firestore.collection(AUDIT).document()
    keep = timedelta(days=clients.settings.erasure_receipt_retention_days)
    ref.set({"operator": operator.name, "action": action, "at": now, "target": target,
             "expire_at": now + keep,
             **{k: v for k, v in details.items() if v is not None}})
    return ref.id


def find_account(clients: Clients, operator: Operator, email: str, now: datetime
                 ) -> dict[str, Any]:
    """The account signed in with ``email``: uid, when created and last signed in, whether it
    confirmed 18+, and its open requests. NotFound when there is none (audited too)."""
    from firebase_admin import auth

    email = (email or "").strip()
    if "@" not in email:
        raise BadRequest("give the account's sign-in email", code="bad_email")
    try:
        user = auth.get_user_by_email(email, app=clients.firebase_app)
    except auth.UserNotFoundError:
        audit(clients, operator, "find_account", now, found=False)
        raise NotFound("no account signs in with that email", code="no_account") from None
    profile = clients.firestore.collection("users").document(user.uid).get()
    open_ids = [rid for rid, doc in _open(clients) if doc.get("owner") == user.uid]
    audit(clients, operator, "find_account", now, uid=user.uid, found=True)
    meta = user.user_metadata
    return {"uid": user.uid, "disabled": user.disabled,
            "created_at": _when(meta.creation_timestamp),
            "last_sign_in_at": _when(meta.last_sign_in_timestamp),
            "adult_confirmed": bool(profile.exists and (profile.to_dict() or {}).get(
                "adult_attested")),
            "open_requests": open_ids}


def start_erasure(clients: Clients, operator: Operator, uid: str, reason: str, note: str,
                  now: datetime) -> dict[str, Any]:
    """Start (or find the running) erasure of ``uid`` on the operator's authority."""
    if reason not in ERASURE_REASONS:
        raise BadRequest("reason is one of " + ", ".join(ERASURE_REASONS), code="bad_reason")
    note = (note or "").strip()
    if not note or len(note) > NOTE_MAX:
        raise BadRequest(f"say why in a note (a ticket, a report; at most {NOTE_MAX} "
                         "characters)", code="note_required")
    from firebase_admin import auth

    try:
        auth.get_user(uid, app=clients.firebase_app)
    except auth.UserNotFoundError:
        audit(clients, operator, "start_erasure", now, found=False)
        raise NotFound("no such account", code="no_account") from None
    started_by = erasure.StartedBy("operator", name=operator.name, note=note)
    request_id, doc = erasure.start(clients, uid, reason, now, started_by=started_by)
    audit(clients, operator, "start_erasure", now, uid=uid, request_id=request_id,
          reason=reason, note=note)
    return {"request_id": request_id, "status": doc.get("status"), "reason": reason}


def open_requests(clients: Clients, operator: Operator, now: datetime,
                  overdue_only: bool = False) -> list[dict[str, Any]]:
    """Every request not yet answered, oldest due first, with days left (negative: overdue).
    Owners are shown as the keyed hash the audit and receipts use, not the uid."""
    key = clients.settings.hash_key
    rows = []
    for request_id, doc in _open(clients):
        due = doc.get("due_at")
        days_left = (due - now).days if isinstance(due, datetime) else None
        if overdue_only and not (isinstance(due, datetime) and due < now):
            continue
        rows.append({"request_id": request_id, "type": doc.get("type"),
                     "status": doc.get("status"), "received_at": doc.get("received_at"),
                     "due_at": due, "days_left": days_left,
                     "overdue": isinstance(due, datetime) and due < now,
                     "owner": ids.erasure_marker(key, doc["owner"]) if doc.get("owner") else None})
    rows.sort(key=lambda r: r["due_at"] or now)
    audit(clients, operator, "list_requests", now, overdue_only=overdue_only, count=len(rows))
    return rows


def _open(clients: Clients) -> list[tuple[str, dict[str, Any]]]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = clients.firestore.collection(privacy_requests.COLLECTION).where(
        filter=FieldFilter("status", "in", [privacy_requests.RECEIVED,
                                            privacy_requests.IN_PROGRESS]))
    return [(snap.id, snap.to_dict() or {}) for snap in query.stream()]


def _when(ms: int | None) -> datetime | None:
    from datetime import UTC

    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None
