"""Erasure of a user: every location of :data:`pacs.privacy.personal_data.LOCATIONS`, resumable and
idempotent, with a pseudonymous receipt.

Order of events:

0. Who started it is checked and recorded (:class:`StartedBy`): a user only with a sign-in
   of the last ``recent_signin_seconds`` (its verified time is recorded), a job or an
   operator by name (and the operator's note).
1. The request is recorded (``privacy_requests``, type ``erasure``) and the *marker*
   ``erasures/{ids.erasure_marker(key, uid)}`` is written before anything is deleted:
   ingest (``pacs.ingest.pipeline``, ``pacs.indexing.catalog``) checks it first and writes
   nothing for the user from then on. The marker id is a keyed hash of the uid; it holds no uid.
2. The job (``privacy-jobs``) disables the Auth account and revokes its sessions, so no
   request of the user's can add data while the erasure runs.
3. Every location's deleter runs, in registry order. One failing location never stops the
   others; each outcome and count is recorded in the marker (and mirrored in the request).
4. Every location is searched again; what a concurrent writer left behind is deleted again.
5. The marker becomes the *receipt*: ``completed``, counts per location, when, and when the
   residual copies (backups, point-in-time recovery, soft-deleted objects, logs) expire.
6. Last, the user's privacy requests go, this one included.

A crash anywhere and a retry (Pub/Sub redelivery, or :func:`pacs.privacy.jobs.resume_stalled`)
ends with nothing left: every deleter deletes what it finds and counts what is already gone as done.
The receipt is kept ``erasure_receipt_retention_days`` under the keyed hash (pseudonymous:
whoever holds the key and a uid can find it; nothing in it names the user) as evidence of
the erasure, a legal obligation (see ``docs/privacy_requests.md``). Its id is given to the user when
the erasure is requested; ``GET /receipts/{id}`` answers it without sign-in, since the
account is gone by then.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs import ids, log_events, markers
from pacs.auth import Caller
from pacs.clients import Clients
from pacs.errors import NotFound, TransientError
from pacs.json_values import plain
from pacs.privacy import personal_data
from pacs.privacy import requests as privacy_requests
from pacs.privacy.personal_data import Location, Subject

COLLECTION = markers.ERASURES
IN_PROGRESS, COMPLETED = "in_progress", "completed"
SIGN_OUT = "sign_out"
_RECEIPT_ID = re.compile(r"^[0-9a-f]{32}$")


STARTERS = ("user", "job", "operator")


@dataclass(frozen=True)
class StartedBy:
    """Who started an erasure and on what authority, recorded on its request and on the
    marker (so on the receipt, which names no user).

    A user (``by="user"``) starts one only with a recent sign-in: :meth:`user` checks the
    token's ``auth_time`` and keeps it as ``verified_sign_in_at``, and :func:`start` checks
    it again. A job or an operator (``by="job"``, ``"operator"``) is recorded by ``name``
    (the job's, the operator's id), an operator with a ``note`` (why: a ticket, a report).
    """

    by: str
    verified_sign_in_at: datetime | None = None
    name: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.by not in STARTERS:
            raise ValueError(f"an erasure is started by one of {', '.join(STARTERS)}")
        if self.by != "user" and not self.name.strip():
            raise ValueError("an erasure started by a job or an operator names who")

    @classmethod
    def user(cls, caller: Caller, settings: Any, now: datetime) -> StartedBy:
        """The signed-in user, on a recent sign-in (else 403 ``recent_sign_in_required``)."""
        privacy_requests.require_recent_sign_in(caller, settings, now, "erasure")
        return cls("user", verified_sign_in_at=datetime.fromtimestamp(caller.auth_time, UTC))

    @classmethod
    def job(cls, name: str) -> StartedBy:
        return cls("job", name=name)

    @classmethod
    def operator(cls, name: str, note: str) -> StartedBy:
        return cls("operator", name=name, note=note)

    def check(self, settings: Any, now: datetime) -> None:
        """403 ``recent_sign_in_required`` for a user's erasure whose sign-in is not (or no
        longer) within ``recent_signin_seconds`` of ``now``."""
        verified = self.verified_sign_in_at
        if self.by == "user" and (verified is None or (
                now - verified).total_seconds() > settings.recent_signin_seconds):
            raise privacy_requests.recent_sign_in_refusal("erasure", settings)

    def record(self) -> dict[str, Any]:
        if self.by == "user":
            return {"by": "user", "verified_sign_in_at": self.verified_sign_in_at}
        return {"by": self.by, "name": self.name.strip(),
                **({"note": self.note.strip()} if self.note.strip() else {})}


class ErasureIncomplete(TransientError):
    """Some locations could not be erased yet; the job is retried."""

    code = "erasure_incomplete"


def receipt_id(settings: Any, uid: str) -> str:
    return ids.erasure_marker(settings.hash_key, uid)


def marker_ref(firestore: Any, settings: Any, uid: str) -> Any:
    return firestore.collection(COLLECTION).document(receipt_id(settings, uid))


def pending(firestore: Any, settings: Any, uid: str) -> bool:
    """An erasure of this user was requested (running or done)."""
    return markers.erasure_pending(firestore, settings.hash_key, uid)


def write_marker(firestore: Any, settings: Any, uid: str, reason: str, now: datetime,
                 started_by: dict[str, Any] | None = None) -> None:
    """Create the marker unless it exists (idempotent; an existing one is left as it is)."""
    from google.api_core.exceptions import AlreadyExists

    try:
        marker_ref(firestore, settings, uid).create({
            "status": IN_PROGRESS, "reason": reason, "started_by": started_by,
            "requested_at": now, "completed_at": None,
            "last_attempt_at": None, "attempts": 0, "counts": {}, "steps": {}, "failed": [],
            "locations": [loc.name for loc in personal_data.LOCATIONS]})
    except AlreadyExists:
        pass


def start(clients: Clients, uid: str, reason: str, now: datetime, *, started_by: StartedBy,
          **fields: Any) -> tuple[str, dict[str, Any]]:
    """Check who starts it, record the erasure request (or find the open one), write the
    marker, queue the job.

    ``reason`` is ``user_request``, or ``minor`` for an account declared (or, started by an
    operator, reported) to be a child's. ``started_by`` is recorded on the request and the
    marker; a user's erasure needs a sign-in verified within ``recent_signin_seconds``
    (403 ``recent_sign_in_required`` otherwise, before anything is written).
    """
    fs, settings = clients.firestore, clients.settings
    started_by.check(settings, now)
    started = started_by.record()
    existing = privacy_requests.open_request(fs, uid, "erasure")
    if existing is None:
        request_id, doc = privacy_requests.create(
            fs, uid, "erasure", settings, now, reason=reason,
            receipt_id=receipt_id(settings, uid), started_by=started, **fields)
    else:
        request_id, doc = existing
    write_marker(fs, settings, uid, reason, now, started)
    privacy_requests.publish_job(clients, request_id, uid, "erasure")
    log_events.emit("INFO", "erasure_requested", "erasure requested", uid=uid,
                    request=request_id, reason=reason, started_by=started_by.by)
    return request_id, doc


def _record(fs: Any, marker: Any, request_id: str | None, update: dict[str, Any],
            request_update: dict[str, Any]) -> None:
    marker.update(update)
    if request_id and request_update:
        try:
            privacy_requests.request_ref(fs, request_id).update(request_update)
        except Exception:  # noqa: BLE001 - the request doc is a mirror; the marker counts
            pass


def _run_location(subject: Subject, location: Location, marker: Any,
                  request_id: str | None) -> bool:
    """Run one deleter; record its outcome. True when it succeeded."""
    from google.cloud import firestore as gfs

    try:
        count = int(location.delete(subject))
    except Exception as err:  # noqa: BLE001 - one location never stops the others
        log_events.emit("WARNING", "erasure_location_failed", "location not erased",
                        uid=subject.uid, location=location.name, error_type=type(err).__name__)
        _record(subject.firestore, marker, request_id, {f"steps.{location.name}": "failed"},
                {f"progress.{location.name}": "failed"})
        return False
    _record(subject.firestore, marker, request_id,
            {f"counts.{location.name}": gfs.Increment(count), f"steps.{location.name}": "done"},
            {f"progress.{location.name}": "done"})
    return True


def _holds_data(subject: Subject, location: Location) -> bool:
    return next(iter(location.find(subject)), None) is not None


def erase(clients: Clients, uid: str, *, request_id: str | None = None,
          reason: str = "user_request", now: Callable[[], datetime] = privacy_requests.utc_now,
          locations: Sequence[Location] = personal_data.LOCATIONS) -> dict[str, Any]:
    """Erase everything of ``uid`` (see the module docstring). Idempotent.

    Returns
    -------
    dict
        The public receipt.

    Raises
    ------
    ErasureIncomplete
        Some location failed; the others are erased, the marker names the failed ones, and
        running again finishes.
    """
    from google.cloud import firestore as gfs

    fs, settings = clients.firestore, clients.settings
    subject = Subject(clients, uid)
    started = now()
    write_marker(fs, settings, uid, reason, started)
    marker = marker_ref(fs, settings, uid)
    marker.update({"attempts": gfs.Increment(1), "last_attempt_at": started})
    if request_id:
        snap = privacy_requests.request_ref(fs, request_id).get()
        doc = snap.to_dict() if snap.exists else None
        if doc is None or doc.get("owner") != uid:
            request_id = None
        elif doc.get("status") == privacy_requests.RECEIVED:
            privacy_requests.advance(fs, request_id, privacy_requests.IN_PROGRESS, started)
    log_events.emit("INFO", "erasure_started", "erasure attempt started", uid=uid,
                    receipt=marker.id[:16])
    failed: list[str] = []
    try:
        personal_data.sign_out(subject)
        _record(fs, marker, request_id, {f"steps.{SIGN_OUT}": "done"}, {})
    except Exception as err:  # noqa: BLE001 - recorded; deleting the data goes on
        log_events.emit("WARNING", "erasure_location_failed", "sign-out failed", uid=uid,
                        location=SIGN_OUT, error_type=type(err).__name__)
        _record(fs, marker, request_id, {f"steps.{SIGN_OUT}": "failed"}, {})
    requests_last = [loc for loc in locations if loc.name == personal_data.REQUESTS]
    body = [loc for loc in locations if loc.name != personal_data.REQUESTS]
    for location in body:
        if not _run_location(subject, location, marker, request_id):
            failed.append(location.name)
    # Concurrent writers (an upload that was mid-way, a request in flight) may have added
    # something behind a deleter: look again everywhere and delete again.
    for location in body:
        if location.name in failed:
            continue
        try:
            left = _holds_data(subject, location)
        except Exception:  # noqa: BLE001 - cannot tell: treat as failed, retry later
            left = True
        if left and (not _run_location(subject, location, marker, request_id)
                     or _holds_data(subject, location)):
            failed.append(location.name)
    if failed:
        marker.update({"status": IN_PROGRESS, "failed": failed})
        log_events.emit("WARNING", "erasure_incomplete", "erasure incomplete; will retry",
                        uid=uid, failed=failed)
        raise ErasureIncomplete("not yet erased: " + ", ".join(failed))
    for location in requests_last:  # the requests, this one included, go last
        if not _run_location(subject, location, marker, None) or _holds_data(subject, location):
            marker.update({"status": IN_PROGRESS, "failed": [location.name]})
            raise ErasureIncomplete("privacy requests not yet erased")
    # Completed only now, once every location is done: the receipt is public, and read
    # between a "completed" and the requests' step it listed them as still pending.
    snap = marker.get()
    record = snap.to_dict() or {}
    finished = record.get("completed_at") or now()
    marker.update({
        "status": COMPLETED, "failed": [], "completed_at": finished,
        "residual_copies_expire_by": finished + timedelta(days=settings.residual_copy_days),
        "logs_expire_by": finished + timedelta(days=settings.log_retention_days),
        "expire_at": finished + timedelta(days=settings.erasure_receipt_retention_days)})
    log_events.emit("INFO", "erasure_completed", "erasure completed", uid=uid,
                    receipt=marker.id[:16])
    return public_receipt(marker.id, marker.get().to_dict() or {})


def public_receipt(receipt: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The receipt as the user sees it, with what is kept and why."""
    return {
        "receipt_id": receipt,
        **{k: plain(doc.get(k)) for k in (
            "status", "reason", "started_by", "requested_at", "completed_at", "attempts",
            "failed",
            "residual_copies_expire_by", "logs_expire_by")},
        "deleted": dict(doc.get("counts") or {}),
        "locations": {name: (doc.get("steps") or {}).get(name, "pending")
                      for name in doc.get("locations") or []},
        "receipt_expires_at": plain(doc.get("expire_at")),
        "kept": [{"what": k.what, "why": k.why, "legal_basis": k.legal_basis,
                  "retention": k.retention} for k in personal_data.KEPT],
        "pseudonymous": ("this receipt is stored under a keyed hash of your account id and "
                         "holds nothing else that names you; whoever holds the key and your "
                         "account id can find it, so it is pseudonymous, not anonymous"),
    }


def get_receipt(firestore: Any, receipt: Any) -> dict[str, Any]:
    """``GET /receipts/{id}`` (no sign-in: the account may be gone)."""
    if not isinstance(receipt, str) or not _RECEIPT_ID.match(receipt):
        raise NotFound("no such receipt", code="not_found")
    snap = firestore.collection(COLLECTION).document(receipt).get()
    if not snap.exists:
        raise NotFound("no such receipt", code="not_found")
    return {"receipt": public_receipt(receipt, snap.to_dict() or {})}
