"""The two data-subject requests that run as jobs (export and erasure): how a request is
submitted and verified, the ``privacy-jobs`` message that runs it, and the scheduled
re-queue of stalled ones. The request records themselves are :mod:`pacs.privacy.requests`.

The 18+ answer of ``POST /profile`` is here too (:func:`attest_age`), since a "no" from an
account without a profile starts an erasure: verified like every erasure a user starts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs.auth import Caller
from pacs.clients import Clients
from pacs.errors import BadRequest, Forbidden
from pacs.privacy import erasure, export, export_runs, profile
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
    recent_sign_in_refusal,
    utc_now,
)


def _refuse_stale_sign_in(clients: Clients, uid: str, kind: str, now: datetime) -> Forbidden:
    """Record a verified request refused for a stale sign-in; return the 403 to raise."""
    fs, settings = clients.firestore, clients.settings
    request_id, _ = create(fs, uid, kind, settings, now)
    advance(fs, request_id, REJECTED, now, reason="recent_sign_in_required")
    return recent_sign_in_refusal(kind, settings)


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
        raise _refuse_stale_sign_in(clients, caller.uid, kind, now)
    existing = open_request(fs, caller.uid, kind)
    if existing is not None:
        request_id, doc = existing
        return {"request": public(request_id, doc, now)}, 200
    if kind == "erasure":
        request_id, doc = erasure.start(clients, caller.uid, reason="user_request", now=now,
                                        started_by=erasure.StartedBy.user(caller, settings, now))
    else:
        request_id, doc = create(fs, caller.uid, kind, settings, now,
                                 verified_sign_in_at=datetime.fromtimestamp(caller.auth_time,
                                                                            UTC))
        publish_job(clients, request_id, caller.uid, kind)
    return {"request": public(request_id, doc, now)}, 202


def attest_age(clients: Clients, caller: Caller, body: dict[str, Any],
               now: datetime) -> tuple[dict[str, Any], int]:
    """``POST /profile {adult, display_name?, email?}``: the 18+ attestation.

    An account with a profile gets it back unchanged, whatever the answer (an adult who
    wants to leave sends an erasure request). An account without one that answers
    ``adult: false`` is a child's: nothing is kept, and its erasure starts (reason
    ``minor``) like every erasure a user starts, on a recent sign-in only (a sign-up is
    one); a stale one is refused with 403 ``recent_sign_in_required`` and recorded.
    """
    fs, settings = clients.firestore, clients.settings
    try:
        doc, created = profile.create(fs, caller.uid, caller.email, body,
                                      settings.policy_version, now)
    except Forbidden as err:
        if err.code != "under_18":
            raise
        if not is_recent_sign_in(caller, settings, now):
            raise _refuse_stale_sign_in(clients, caller.uid, "erasure", now) from None
        request_id, _ = erasure.start(clients, caller.uid, reason="minor", now=now,
                                      started_by=erasure.StartedBy.user(caller, settings, now))
        return {"error": "under_18", "message": "the service is for adults only: this "
                "account and anything uploaded with it are being deleted",
                "request_id": request_id,
                "receipt_id": erasure.receipt_id(settings, caller.uid)}, 403
    return {"profile": profile.public(doc), "created": created}, 201 if created else 200


def run_job(clients: Clients, payload: dict[str, Any],
            now: Callable[[], datetime] = utc_now) -> str:
    """A ``privacy-jobs`` message: run the export or erasure it names, or the next run of a
    de-identified share's copy (idempotent)."""
    kind, uid, request_id = payload.get("type"), payload.get("uid"), payload.get("request_id")
    if not isinstance(uid, str) or not isinstance(request_id, str):
        return "malformed"
    if kind == "erasure":
        erasure.erase(clients, uid, request_id=request_id, now=now)
        return "erased"
    if kind == "export":
        return export_runs.run_export_request(clients, uid, request_id, now=now)
    if kind == "share_copy":  # a de-identified share's copy, run by run (request_id: share)
        from pacs.links import deidentified

        return deidentified.continue_copy(clients, uid, request_id)
    return "unknown_type"


def resume_stalled(clients: Clients, now: datetime, older_than: timedelta = timedelta(minutes=30)
                   ) -> int:
    """Queue again every export or erasure request left ``received`` or ``in_progress`` for
    longer than ``older_than`` (a lost message, or a job that died past its retries), and
    every de-identified share's copy left ``preparing`` as long.
    For the scheduled ``resume_erasures`` job, which also removes any download link that a
    version before issue 14 stored in an export's result (:func:`export.forget_stored_links`;
    one query that finds nothing once they are gone). Returns how many were queued."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    export.forget_stored_links(clients.firestore)
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
    from pacs.links import deidentified

    return queued + deidentified.resume_stalled_copies(clients, now, older_than)
