"""``purge_logs``: the logs the system keeps itself, for a limited period.

- Access records (``access/{id}``: who reached which study, when, from which IP address and
  browser) older than ``access_log_retention_days`` (default 90) are deleted, and with them
  the full IP addresses and user agents of share recipients (``access_clients/{id}``).
- Export archives (``exports/...`` in the derived bucket) are deleted once their download
  link has expired (``export_link_seconds`` after they were written, plus a short margin
  for the moment between writing the archive and signing its link).
- Run records of these jobs (``retention_runs``) older than ``run_record_retention_days``.
- Erasure receipts (``erasures/{marker}``) past their ``expire_at``
  (``erasure_receipt_retention_days`` after the erasure completed, set by ``pacs.privacy.erasure``;
  a marker of an erasure still running has none and is never touched).

Cloud Logging's own retention (the functions' log lines, ids only) is a setting of the log
bucket, made by the deploy step (``deploy/plan.py``: ``LOG_RETENTION_DAYS``); Firestore
backups and soft-deleted objects expire by their own settings there too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pacs import markers
from pacs.links import access_log
from pacs.paging import blob_pages, query_pages
from pacs.retention.context import JobContext

EXPORTS_PREFIX = "exports/"
EXPORT_MARGIN = timedelta(minutes=10)
RUNS = "retention_runs"


def old_access_query(firestore: Any, cutoff: Any,
                     collection: str = access_log.COLLECTION) -> Any:
    """Access records (or ``access_clients``) older than ``cutoff``, oldest first."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(collection)
            .where(filter=FieldFilter("at", "<", cutoff)).order_by("at").select(["at"]))


def old_runs_query(firestore: Any, cutoff: Any) -> Any:
    """Run records started before ``cutoff``, oldest first."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(RUNS).where(filter=FieldFilter("started_at", "<", cutoff))
            .order_by("started_at").select(["started_at"]))


def expired_receipts_query(firestore: Any, now: Any) -> Any:
    """Erasure receipts past their retention, oldest first."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(markers.ERASURES).where(filter=FieldFilter("expire_at", "<", now))
            .order_by("expire_at").select(["expire_at"]))


def delete_query_pages(ctx: JobContext, query: Any, step: str, counter: str) -> bool:
    """Delete every document of ``query`` a page at a time (one batch per page; a document
    already gone is deleted again harmlessly). False when the budget ran out first."""
    fs = ctx.firestore
    for page in query_pages(query, ctx.page_size):
        batch = fs.batch()
        for snap in page:
            batch.delete(snap.reference)
        try:
            batch.commit()
        except Exception as err:  # noqa: BLE001 - counted; the next run retries them
            ctx.error(step, err, n=len(page))
        else:
            ctx.changed(counter, len(page))
        if ctx.out_of_time():
            return False
    return True


def purge_exports(ctx: JobContext) -> bool:
    """Delete export archives whose link has expired. False when the budget ran out."""
    settings = ctx.settings
    cutoff = ctx.now - timedelta(seconds=settings.export_link_seconds) - EXPORT_MARGIN
    prefix = EXPORTS_PREFIX + ctx.scope
    for page in blob_pages(ctx.clients.storage, settings.derived_bucket, ctx.page_size,
                           prefix=prefix):
        ctx.count("exports_seen", len(page))
        for blob in page:
            if blob.time_created is None or blob.time_created >= cutoff:
                continue
            ctx.delete_object(blob, "exports_deleted", "delete_export")
        if ctx.out_of_time():
            return False
    return True


def purge_logs(ctx: JobContext) -> None:
    settings = ctx.settings
    access_cutoff = ctx.now - timedelta(days=settings.access_log_retention_days)
    if not delete_query_pages(ctx, old_access_query(ctx.firestore, access_cutoff),
                              "delete_access", "access_records_deleted"):
        return
    if not delete_query_pages(ctx, old_access_query(ctx.firestore, access_cutoff,
                                                    access_log.CLIENTS),
                              "delete_access_clients", "access_clients_deleted"):
        return
    if not purge_exports(ctx):
        return
    runs_cutoff = ctx.now - timedelta(days=settings.run_record_retention_days)
    if not delete_query_pages(ctx, old_runs_query(ctx.firestore, runs_cutoff),
                              "delete_run_record", "run_records_deleted"):
        return
    delete_query_pages(ctx, expired_receipts_query(ctx.firestore, ctx.now),
                       "delete_erasure_receipt", "erasure_receipts_deleted")


def queries(firestore: Any, now: Any) -> list[Any]:
    """The job's queries (for the index check in the tests)."""
    return [old_access_query(firestore, now).limit(1), old_runs_query(firestore, now).limit(1),
            expired_receipts_query(firestore, now).limit(1)]
