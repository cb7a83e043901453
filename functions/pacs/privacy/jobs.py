"""The two data-subject requests that run as jobs (export and erasure): how a request is
submitted and verified, the ``privacy-jobs`` message that runs it, and the scheduled
re-queue of stalled ones. The request records themselves are :mod:`pacs.privacy.requests`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs.auth import Caller
from pacs.clients import Clients
from pacs.errors import BadRequest, Forbidden
from pacs.privacy import erasure, export
from pacs.privacy.requests import (
    COLLECTION,
    IN_PROGRESS,
    JOB_TYPES,
    RECEIVED,
    REJECTED,
    advance,
    create,
    is_recent_sign_in,
    open_request,
    public,
    publish_job,
    utc_now,
)


def submit(clients: Clients, caller: Caller, body: dict[str, Any],
           now: datetime) -> tuple[dict[str, Any], int]:
    """``POST /requests {type: export|erasure}``: record, verify, queue.

    An open request of the same type is answered instead of a new one (200); a new one is
    202. Erasure writes its marker before the job is queued (ingest stops at once).
    """
    kind = body.get("type")
    if kind not in JOB_TYPES:
        raise BadRequest("type must be export or erasure (other rights have their own routes)",
                         code="bad_type")
    fs, settings = clients.firestore, clients.settings
    if erasure.pending(fs, settings, caller.uid):
        raise Forbidden("your account is being erased", code="erasure_in_progress")
    if not is_recent_sign_in(caller, settings, now):
        request_id, _ = create(fs, caller.uid, kind, settings, now)
        advance(fs, request_id, REJECTED, now, reason="recent_sign_in_required")
        raise Forbidden(f"{kind} needs a recent sign-in (within "
                        f"{settings.recent_signin_seconds} s): sign in again and retry",
                        code="recent_sign_in_required")
    existing = open_request(fs, caller.uid, kind)
    if existing is not None:
        request_id, doc = existing
        return {"request": public(request_id, doc, now)}, 200
    verified = datetime.fromtimestamp(caller.auth_time, UTC)
    if kind == "erasure":
        request_id, doc = erasure.start(clients, caller.uid, reason="user_request", now=now,
                                        verified_sign_in_at=verified)
    else:
        request_id, doc = create(fs, caller.uid, kind, settings, now,
                                 verified_sign_in_at=verified)
        publish_job(clients, request_id, caller.uid, kind)
    return {"request": public(request_id, doc, now)}, 202


def run_job(clients: Clients, payload: dict[str, Any], signer_factory: Callable[[], Any],
            now: Callable[[], datetime] = utc_now) -> str:
    """A ``privacy-jobs`` message: run the export or erasure it names (idempotent)."""
    kind, uid, request_id = payload.get("type"), payload.get("uid"), payload.get("request_id")
    if not isinstance(uid, str) or not isinstance(request_id, str):
        return "malformed"
    if kind == "erasure":
        erasure.erase(clients, uid, request_id=request_id, now=now)
        return "erased"
    if kind == "export":
        return export.run_export_request(clients, uid, request_id, signer_factory, now=now)
    return "unknown_type"


def resume_stalled(clients: Clients, now: datetime, older_than: timedelta = timedelta(minutes=30)
                   ) -> int:
    """Queue again every export or erasure request left ``received`` or ``in_progress`` for
    longer than ``older_than`` (a lost message, or a job that died past its retries).
    For the scheduled ``resume_erasures`` job. Returns how many were queued."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    queued = 0
    for status in (RECEIVED, IN_PROGRESS):
        query = clients.firestore.collection(COLLECTION).where(
            filter=FieldFilter("status", "==", status))
        for snap in query.stream():
            doc = snap.to_dict() or {}
            updated = doc.get("updated_at")
            if doc.get("type") in JOB_TYPES and isinstance(updated, datetime) \
                    and updated <= now - older_than:
                publish_job(clients, snap.id, doc["owner"], doc["type"])
                queued += 1
    return queued
