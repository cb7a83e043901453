"""Running one retention job: the lease, the run record, the time budget, the continuation.

Every run writes ``retention_runs/{run_id}``::

    {job, status, started_at, finished_at, duration_seconds, counts, errors, more,
     message_id, continuation_of, scope}

``status`` is ``running`` while it runs, then ``succeeded`` (to the end, no errors),
``partial`` (some items failed, or the budget ran out: ``more`` is then true), ``failed`` (the
job itself raised), or ``skipped`` (another run of the same job held the lease). ``errors``
holds codes only (``step:ErrorType``), ``counts`` numbers only: no uid, name or text.

Overlap: a run takes ``retention_leases/{job}`` in a transaction (holder = its run id,
expiring after the function's deadline, so a crashed run never blocks the job for longer);
a second run of the same job while it is held records ``skipped`` and does nothing. Every
job is also idempotent on its own (deleting what is already gone is done), so runs that do
overlap (a lease expired under a slow run, or tests that bypass the lease) only repeat work.

A run that stops at its time budget with something done publishes its own message again
(``continuation_of`` = its run id) so a backlog of millions is worked through run after run
instead of one scheduled run a day.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs import log_events
from pacs.clients import Clients
from pacs.paging import Budget
from pacs.retention.context import JobContext, error_code
from pacs.retention.jobs import JOBS

RUNS = "retention_runs"
LEASES = "retention_leases"
RUNNING, SUCCEEDED, PARTIAL, FAILED, SKIPPED = ("running", "succeeded", "partial", "failed",
                                                "skipped")
# Share of the function's deadline a job may use; the rest is for the run record.
BUDGET_SHARE = 0.8
_JOB_NAME = re.compile(r"^[a-z_]{1,40}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def job_name(body: Any) -> str:
    """The ``job`` of a message body (``""`` when there is none)."""
    if isinstance(body, Mapping):
        return str(body.get("job") or "")
    return ""


def _take_lease(fs: Any, job: str, run_id: str, now: datetime, ttl: timedelta) -> bool:
    from google.cloud import firestore as gfs

    ref = fs.collection(LEASES).document(job)

    @gfs.transactional
    def take(transaction: Any) -> bool:
        snap = ref.get(transaction=transaction)
        lease = snap.to_dict() if snap.exists else None
        if lease and lease.get("holder") != run_id and lease.get("expires_at") and (
                lease["expires_at"] > now):
            return False
        transaction.set(ref, {"holder": run_id, "taken_at": now, "expires_at": now + ttl})
        return True

    return take(fs.transaction())


def _release_lease(fs: Any, job: str, run_id: str) -> None:
    from google.cloud import firestore as gfs

    ref = fs.collection(LEASES).document(job)

    @gfs.transactional
    def release(transaction: Any) -> None:
        snap = ref.get(transaction=transaction)
        if snap.exists and (snap.to_dict() or {}).get("holder") == run_id:
            transaction.delete(ref)

    release(fs.transaction())


def _publish_continuation(clients: Clients, job: str, options: Mapping[str, Any],
                          run_id: str) -> None:
    settings = clients.settings
    topic = clients.publisher.topic_path(settings.project_id, settings.retention_topic)
    body = json.dumps({**options, "job": job}, separators=(",", ":"), sort_keys=True).encode()
    clients.publisher.publish(topic, body, continuation_of=run_id).result(timeout=60)


def run(clients: Clients, job: str, *, message_id: str = "",
        options: Mapping[str, Any] | None = None,
        now: Callable[[], datetime] = utc_now, page_size: int | None = None,
        scope: str = "", lease: bool = True, continuation: bool = False,
        continuation_of: str | None = None, budget_seconds: float | None = None
        ) -> dict[str, Any]:
    """Run one job and return its run record.

    Parameters
    ----------
    clients : Clients
    job : str
        A name of :data:`~pacs.retention.jobs.JOBS`; anything else is logged and ignored.
    message_id : str, optional
        The Pub/Sub message that asked for the run (kept in the run record).
    options : mapping, optional
        Job options from the message (other keys than ``job``).
    now : callable, optional
        Clock (injected in tests: every cutoff is computed from its first reading).
    page_size : int, optional
        Documents or objects per page (settings' ``retention_page_size`` by default).
    scope : str, optional
        Object-name prefix the storage passes keep to (tests).
    lease : bool, optional
        Take the job's lease (tests of overlapping steps turn it off).
    continuation : bool, optional
        Publish a continuation when the budget ran out (the function does; tests do not).
    continuation_of : str, optional
        The run this one continues (from the message attribute).
    budget_seconds : float, optional
        Time budget (a share of the function's deadline by default).

    Returns
    -------
    dict
        The run record, with ``id``; ``{"status": "unknown_job"}`` for an unknown job.
    """
    options = {k: v for k, v in dict(options or {}).items() if k != "job"}
    spec = JOBS.get(job)
    if spec is None:
        log_events.emit("WARNING", "retention_job_unknown", "unknown retention job ignored",
                        job=job if _JOB_NAME.match(job) else "(invalid)", message_id=message_id)
        return {"status": "unknown_job", "job": job}
    settings = clients.settings
    fs = clients.firestore
    started = now()
    ref = fs.collection(RUNS).document()
    record: dict[str, Any] = {
        "job": job, "status": RUNNING, "started_at": started, "finished_at": None,
        "duration_seconds": None, "counts": {}, "errors": [], "more": False,
        "message_id": message_id or None, "continuation_of": continuation_of,
        "scope": bool(scope)}
    ref.set(record)
    ttl = timedelta(seconds=settings.event_deadline_seconds + 60)
    if lease and not _take_lease(fs, job, ref.id, started, ttl):
        finished = now()
        update = {"status": SKIPPED, "finished_at": finished, "errors": ["lease_held"],
                  "duration_seconds": (finished - started).total_seconds()}
        ref.update(update)
        log_events.emit("INFO", "retention_job_skipped", "retention job already running",
                        job=job, run_id=ref.id, message_id=message_id or None)
        return {**record, **update, "id": ref.id}
    budget = Budget(budget_seconds if budget_seconds is not None
                    else settings.event_deadline_seconds * BUDGET_SHARE)
    ctx = JobContext(clients=clients, now=started,
                     page_size=max(1, page_size or settings.retention_page_size),
                     budget=budget, scope=scope, options=options)
    status = SUCCEEDED
    try:
        spec.run(ctx)
    except Exception as err:  # noqa: BLE001 - recorded by code; the next run tries again
        status = FAILED
        ctx.errors.append(error_code("job", err))
    finally:
        if lease:
            try:
                _release_lease(fs, job, ref.id)
            except Exception as err:  # noqa: BLE001 - the lease expires on its own
                ctx.errors.append(error_code("lease_release", err))
    if status == SUCCEEDED and (ctx.errors or ctx.more):
        status = PARTIAL
    finished = now()
    update = {"status": status, "finished_at": finished,
              "duration_seconds": (finished - started).total_seconds(),
              "counts": dict(ctx.counts), "errors": list(ctx.errors), "more": ctx.more}
    ref.update(update)
    log_events.emit("INFO" if status == SUCCEEDED else "WARNING", "retention_job_finished",
                    "retention job finished", job=job, run_id=ref.id, status=status,
                    counts=dict(ctx.counts), errors=list(ctx.errors) or None, more=ctx.more,
                    message_id=message_id or None)
    if continuation and ctx.more and ctx.progressed and status != FAILED:
        try:
            _publish_continuation(clients, job, options, ref.id)
        except Exception as err:  # noqa: BLE001 - the next scheduled run continues instead
            log_events.emit("WARNING", "retention_continuation_failed",
                            "continuation not published", job=job, run_id=ref.id,
                            error_type=type(err).__name__)
    return {**record, **update, "id": ref.id}


def recent_runs(firestore: Any, job: str, limit: int = 20) -> list[dict[str, Any]]:
    """An operator's view: the latest run records of one job, newest first."""
    from google.cloud import firestore as gfs
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (firestore.collection(RUNS).where(filter=FieldFilter("job", "==", job))
             .order_by("started_at", direction=gfs.Query.DESCENDING).limit(limit))
    return [{"id": s.id, **(s.to_dict() or {})} for s in query.stream()]


def queries(firestore: Any) -> list[Any]:
    """The runner's queries (for the index check in the tests)."""
    from google.cloud import firestore as gfs
    from google.cloud.firestore_v1.base_query import FieldFilter

    return [firestore.collection(RUNS).where(filter=FieldFilter("job", "==", "j"))
            .order_by("started_at", direction=gfs.Query.DESCENDING).limit(1)]
