"""``resume_deletions``: study deletions that did not finish are finished.

A study deletion (:mod:`pacs.studies.deletion`) stays ``in_progress`` when an upload that
carried the study was still being processed (it answered 202, ``waiting_for: upload``) or
when a location failed or the function died part way. Nobody has to send it again: this
job runs every deletion that has not moved for ``deletion_stale_minutes`` once more, as
its owner; every deleter is idempotent, so a deletion run twice (overlapping runs, or the
owner retrying meanwhile) completes once. One that still cannot finish stays for the next
run, counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pacs import markers
from pacs.errors import TransientError
from pacs.paging import query_pages
from pacs.retention.context import JobContext


def stalled_query(firestore: Any, scope_uid: str | None) -> Any:
    """Deletion records still ``in_progress`` (the age is checked on each: an equality
    alone needs no composite index), of one owner when the run is scoped."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = firestore.collection(markers.DELETIONS).where(
        filter=FieldFilter("status", "==", markers.DELETION_IN_PROGRESS))
    if scope_uid:
        query = query.where(filter=FieldFilter("owner", "==", scope_uid))
    return query


def resume_deletions(ctx: JobContext) -> None:
    from pacs.studies import deletion  # the deletion chain loads only when this job runs

    cutoff = ctx.now - timedelta(minutes=ctx.settings.deletion_stale_minutes)
    scope_uid = ctx.scope.rstrip("/") or None
    for page in query_pages(stalled_query(ctx.firestore, scope_uid), ctx.page_size):
        for snap in page:
            record = snap.to_dict() or {}
            last = record.get("last_attempt_at")
            if not isinstance(last, datetime) or last > cutoff:
                continue  # moving (or just started): its own request may still finish it
            owner, study = record.get("owner"), record.get("study_key")
            ctx.count("deletions_seen")
            try:
                done = deletion.delete_study(ctx.clients, owner, study)
            except TransientError as err:
                ctx.error("resume_deletion", err)
                continue
            except Exception as err:  # noqa: BLE001 - counted; the next run retries it
                ctx.error("resume_deletion", err)
                continue
            if done["status"] == deletion.COMPLETED:
                ctx.changed("deletions_completed")
            else:
                ctx.count("deletions_waiting")
        if ctx.out_of_time():
            return
