"""``watch_deadlines``: the policy's 30-day answer to each data-subject request is watched.

Every open request (``received`` or ``in_progress``) has a ``due_at``
(:func:`pacs.privacy.requests.due_date`). This job marks a request due within
``privacy_at_risk_days`` as ``at_risk`` (with when it was first seen so), and each run logs one
ERROR entry ``privacy_request_overdue`` per request past its due date — ids and day counts
only — which the deploy plan's log-based alert (``deploy/plan.py``) sends to the operator
named in the checklist (docs/deploy.md). An overdue request alerts again on every run until
it is answered.

Idempotent and overlap-safe: the marks are plain field updates (the same values), and the
log entries carry the run's time, so overlapping runs only repeat an alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pacs import log_events
from pacs.paging import query_pages
from pacs.retention.context import JobContext

REQUESTS = "privacy_requests"  # pacs.privacy.requests.COLLECTION
OPEN = ("received", "in_progress")


def open_requests(firestore: Any) -> Any:
    """Requests not yet answered (an ``in`` filter on one field needs no composite index)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return firestore.collection(REQUESTS).where(filter=FieldFilter("status", "in", list(OPEN)))


def watch_deadlines(ctx: JobContext) -> None:
    warn_from = timedelta(days=ctx.settings.privacy_at_risk_days)
    for page in query_pages(open_requests(ctx.firestore), ctx.page_size):
        for snap in page:
            request = snap.to_dict() or {}
            due = request.get("due_at")
            if not isinstance(due, datetime):
                ctx.count("requests_without_due_date")
                continue
            ctx.count("requests_open")
            kind = str(request.get("type", ""))
            left = due - ctx.now
            if left > warn_from:
                continue
            overdue = left < timedelta(0)
            try:
                if not request.get("at_risk") or overdue != bool(request.get("overdue")):
                    snap.reference.update({"at_risk": True, "overdue": overdue,
                                           "at_risk_since": request.get("at_risk_since")
                                           or ctx.now})
                    ctx.changed("requests_marked")
            except Exception as err:  # noqa: BLE001 - counted; the next run retries it
                ctx.error("mark_at_risk", err)
            if overdue:
                ctx.count("requests_overdue")
                log_events.privacy_request_overdue(snap.id, kind, (-left).days)
            else:
                ctx.count("requests_at_risk")
                log_events.privacy_request_at_risk(snap.id, kind, left.days)
        if ctx.out_of_time():
            return
