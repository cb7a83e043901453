"""Data-subject requests: how each is recorded, moved through its statuses and answered.
Submitting and running the long ones (export, erasure) is :mod:`pacs.privacy.jobs`.

Every request is ``privacy_requests/{id}``: ``owner``, ``type``, ``status``, ``reason``
(why it was rejected, or why an erasure was started), ``received_at``, ``due_at``
(``received_at`` + ``Settings.privacy_response_days``, the policy's 30 days),
``completed_at``, ``updated_at`` and ``history`` (every status with its time). Statuses:
``received`` → ``in_progress`` → ``completed``, or ``rejected`` with a reason from
``received`` or ``in_progress`` (:data:`TRANSITIONS`); nothing leaves a final status.

Types: ``export`` (access and portability, :mod:`pacs.privacy.export`) and ``erasure``
(:mod:`pacs.privacy.erasure`) run as jobs on the ``privacy-jobs`` topic
(:mod:`pacs.privacy.jobs`); ``rectification``, ``restriction``, ``objection`` and
``restriction_lifted`` complete within the request.
Export and erasure are *verified requests*: the caller's ID token must come from a sign-in
at most ``Settings.recent_signin_seconds`` old (``auth_time``); an older one is recorded
as ``rejected`` (``recent_sign_in_required``) and refused with 403. Downloading a finished
export needs the same (:func:`pacs.privacy.export.issue_download`): no document holds a
download link, so nothing a stale token can read leads to the archive.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs import log_events
from pacs.auth import Caller
from pacs.clients import Clients
from pacs.errors import BadRequest, Forbidden, NotFound, PacsError
from pacs.json_values import plain

COLLECTION = "privacy_requests"
RECEIVED, IN_PROGRESS, COMPLETED, REJECTED = "received", "in_progress", "completed", "rejected"
FINAL = (COMPLETED, REJECTED)
TRANSITIONS = {RECEIVED: (IN_PROGRESS, REJECTED), IN_PROGRESS: (COMPLETED, REJECTED)}
JOB_TYPES = ("export", "erasure")
SYNC_TYPES = ("rectification", "restriction", "objection", "restriction_lifted")
TYPES = JOB_TYPES + SYNC_TYPES
LIST_MAX = 200


def utc_now() -> datetime:
    return datetime.now(UTC)


def due_date(received_at: datetime, settings: Any) -> datetime:
    """When the answer is due: the policy's response time after receipt."""
    return received_at + timedelta(days=settings.privacy_response_days)


def is_recent_sign_in(caller: Caller, settings: Any, now: datetime) -> bool:
    """Whether the token's sign-in (``auth_time``) is at most ``recent_signin_seconds`` old."""
    auth_time = caller.auth_time
    return auth_time > 0 and now.timestamp() - auth_time <= settings.recent_signin_seconds


def recent_sign_in_refusal(what: str, settings: Any) -> Forbidden:
    """The 403 of an action that needs a recent sign-in (``what`` names it for people)."""
    return Forbidden(f"{what} needs a recent sign-in (within {settings.recent_signin_seconds} s):"
                     " sign in again and retry", code="recent_sign_in_required")


def require_recent_sign_in(caller: Caller, settings: Any, now: datetime, what: str) -> None:
    """Raise 403 ``recent_sign_in_required`` unless :func:`is_recent_sign_in`."""
    if not is_recent_sign_in(caller, settings, now):
        raise recent_sign_in_refusal(what, settings)


def request_ref(firestore: Any, request_id: str) -> Any:
    return firestore.collection(COLLECTION).document(request_id)


def create(firestore: Any, uid: str, kind: str, settings: Any, now: datetime,
           **fields: Any) -> tuple[str, dict[str, Any]]:
    """Record a new request (``received``); returns its id and document."""
    if kind not in TYPES:
        raise BadRequest("type must be one of " + ", ".join(TYPES), code="bad_type")
    request_id = uuid.uuid4().hex
    doc = {"owner": uid, "type": kind, "status": RECEIVED, "reason": None, "received_at": now,
           "due_at": due_date(now, settings), "completed_at": None, "updated_at": now,
           "history": [{"status": RECEIVED, "at": now}], "attempts": 0, **fields}
    request_ref(firestore, request_id).create(doc)
    log_events.emit("INFO", "privacy_request_received", "privacy request received", uid=uid,
                    request=request_id, type=kind)
    return request_id, doc


def advance(firestore: Any, request_id: str, to: str, now: datetime, reason: str | None = None,
            **fields: Any) -> dict[str, Any] | None:
    """Move a request to ``to`` if the transition is allowed (atomically).

    Returns the updated document; the current one unchanged when it already is in ``to``;
    None when the request does not exist. Raises ``ValueError`` on a forbidden transition.
    """
    from google.cloud import firestore as gfs

    ref = request_ref(firestore, request_id)

    @gfs.transactional
    def apply(transaction: Any) -> dict[str, Any] | None:
        snap = ref.get(transaction=transaction)
        if not snap.exists:
            return None
        doc = snap.to_dict() or {}
        current = doc.get("status")
        if current == to:
            return doc
        if to not in TRANSITIONS.get(current, ()):
            raise ValueError(f"{current} → {to} is not a request transition")
        entry = {"status": to, "at": now, **({"reason": reason} if reason else {})}
        update = {"status": to, "updated_at": now, "history": [*doc.get("history", []), entry],
                  **fields}
        if reason:
            update["reason"] = reason
        if to in FINAL:
            update["completed_at"] = now
        transaction.update(ref, update)
        return {**doc, **update}

    doc = apply(firestore.transaction())
    if doc is not None and doc.get("status") == to:
        log_events.emit("INFO", "privacy_request_status", "privacy request status",
                        uid=doc.get("owner"), request=request_id, type=doc.get("type"),
                        status=to, reason=reason)
    return doc


def public(request_id: str, doc: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What the owner sees of a request. An export's result says until when its archive can
    be downloaded (``available_until``) and whether that time has passed (``expired``); it
    never holds a link (versions before issue 14 stored one, with ``expires_at``: neither is
    shown, the time becomes ``available_until``)."""
    out = {"id": request_id, **{k: plain(doc.get(k)) for k in (
        "type", "status", "reason", "received_at", "due_at", "completed_at", "updated_at",
        "history", "receipt_id", "details", "started_by")}}
    result = dict(doc.get("result") or {})
    if result:
        result.pop("download_url", None)
        legacy_until = result.pop("expires_at", None)
        until = result.get("available_until") or legacy_until
        if isinstance(until, datetime):
            result["available_until"] = until
            result["expired"] = now is not None and until <= now
        out["result"] = plain(result)
    return out


def owned_request(firestore: Any, uid: str, request_id: Any) -> dict[str, Any]:
    if not isinstance(request_id, str) or not request_id.isalnum() or len(request_id) > 64:
        raise NotFound("no such request", code="not_found")
    snap = request_ref(firestore, request_id).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid:
        raise NotFound("no such request", code="not_found")
    return doc


def get_request(firestore: Any, uid: str, request_id: Any, now: datetime) -> dict[str, Any]:
    return {"request": public(request_id, owned_request(firestore, uid, request_id), now)}


def list_requests(firestore: Any, uid: str, now: datetime) -> dict[str, Any]:
    """The owner's requests, newest first (the owner filter alone: no composite index)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = firestore.collection(COLLECTION).where(filter=FieldFilter("owner", "==", uid))
    snaps = sorted(query.stream(), key=lambda s: (s.to_dict() or {}).get("received_at") or now,
                   reverse=True)
    return {"requests": [public(s.id, s.to_dict() or {}, now) for s in snaps[:LIST_MAX]]}


def open_request(firestore: Any, uid: str, kind: str) -> tuple[str, dict[str, Any]] | None:
    """An earlier request of this type still ``received`` or ``in_progress``."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (firestore.collection(COLLECTION).where(filter=FieldFilter("owner", "==", uid))
             .where(filter=FieldFilter("type", "==", kind)))
    for snap in query.stream():
        doc = snap.to_dict() or {}
        if doc.get("status") in (RECEIVED, IN_PROGRESS):
            return snap.id, doc
    return None


def publish_job(clients: Clients, request_id: str, uid: str, kind: str) -> None:
    """Queue the job of an export or erasure request on ``privacy-jobs``."""
    topic = clients.publisher.topic_path(clients.settings.project_id,
                                         clients.settings.privacy_topic)
    payload = {"request_id": request_id, "uid": uid, "type": kind}
    clients.publisher.publish(topic, json.dumps(payload).encode()).result(timeout=60)


def run_sync(firestore: Any, uid: str, kind: str, settings: Any, now: datetime,
             apply: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A request answered within the call: recorded, ``in_progress``, then ``completed``
    with its result, or ``rejected`` with the refusal's code (which is re-raised)."""
    request_id, _ = create(firestore, uid, kind, settings, now)
    advance(firestore, request_id, IN_PROGRESS, now)
    try:
        result = apply()
    except Exception as err:
        reason = err.code if isinstance(err, PacsError) else "internal_error"
        advance(firestore, request_id, REJECTED, now, reason=reason)
        raise
    doc = advance(firestore, request_id, COMPLETED, now, details=result)
    return {"request": public(request_id, doc or {}, now), **result}
