"""``clean_uploads``: the uploads bucket holds only uploads still in flight.

1. Uploads still ``pending`` ``pending_upload_expiry_hours`` after they were started never
   finished: they become ``failed`` (reason ``expired``) and stop counting toward the quota;
   a late object of theirs is deleted (and a late finalize event finds a final upload and
   does nothing).
2. Uploads stuck in ``processing`` (no progress for ``stalled_upload_expiry_hours``, far past
   the events' maximum age, so no delivery will ever continue them) are finished as they
   stand: ``partial`` when some of their files were stored, else ``failed``, reason
   ``gave_up``; their series are settled like any finished upload's.
3. The raw object of every finished upload (``complete``, ``partial`` or ``failed``) is
   deleted ``raw_upload_keep_hours`` after it finished: the canonical instances are the kept
   copy. An object with no upload record (or another owner's) is deleted once older than
   ``reconcile_grace_hours``.

Step 3 walks the bucket itself, not the upload records: what it lists is exactly what is
left to delete (plus the few uploads in flight), so it stays small however many uploads
the system has seen. Steps 1 and 2 change a record only if it has not changed since it
was read (an update-time precondition), so an upload that starts processing meanwhile is
left alone, and overlapping runs change each record once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pacs import results
from pacs.ingest import uploads
from pacs.paging import blob_pages, query_pages
from pacs.retention.context import JobContext, delete_blob

EXPIRED_MESSAGE = "The upload was started but its file never arrived; start it again."


def _parse(name: str) -> tuple[str, str] | None:
    """``{uid}/{uploadId}`` → (uid, upload_id); None for any other shape."""
    parts = name.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def stale_query(firestore: Any, status: str, field: str, cutoff: Any) -> Any:
    """Uploads in ``status`` whose ``field`` is older than ``cutoff``, oldest first."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(uploads.UPLOADS)
            .where(filter=FieldFilter("status", "==", status))
            .where(filter=FieldFilter(field, "<", cutoff)).order_by(field)
            .select(["owner", "object", "status", field]))


def _update_unchanged(ctx: JobContext, snap: Any, update: dict[str, Any]) -> bool:
    """Update the upload only if it is unchanged since ``snap`` was read; False when it
    changed or went away meanwhile."""
    from google.api_core.exceptions import FailedPrecondition, NotFound

    option = ctx.firestore.write_option(last_update_time=snap.update_time)
    try:
        snap.reference.update(update, option=option)
    except (FailedPrecondition, NotFound):
        return False
    return True


def expire_pending(ctx: JobContext) -> bool:
    """Step 1. False when the budget ran out."""
    settings = ctx.settings
    cutoff = ctx.now - timedelta(hours=settings.pending_upload_expiry_hours)
    bucket = ctx.clients.storage.bucket(settings.uploads_bucket)
    query = stale_query(ctx.firestore, uploads.PENDING, "created_at", cutoff)
    for page in query_pages(query, ctx.page_size):
        for snap in page:
            doc = snap.to_dict() or {}
            try:
                if not _update_unchanged(ctx, snap, {
                        "status": uploads.FAILED, "reason": "expired", "message": EXPIRED_MESSAGE,
                        "counts_toward_quota": False, "completed_at": ctx.now,
                        "updated_at": ctx.now}):
                    ctx.count("uploads_changed_meanwhile")
                    continue
                ctx.changed("pending_uploads_expired")
                name = doc.get("object")
                if name and (blob := bucket.get_blob(name)) is not None and delete_blob(blob):
                    ctx.changed("raw_objects_deleted")
            except Exception as err:  # noqa: BLE001 - counted; the next run retries it
                ctx.error("expire_pending", err)
        if ctx.out_of_time():
            return False
    return True


def finish_stalled(ctx: JobContext) -> bool:
    """Step 2. False when the budget ran out."""
    from pacs.indexing import settle  # the indexing chain (pydicom) loads only when needed

    settings = ctx.settings
    cutoff = ctx.now - timedelta(hours=settings.stalled_upload_expiry_hours)
    query = stale_query(ctx.firestore, uploads.PROCESSING, "updated_at", cutoff)
    for page in query_pages(query, ctx.page_size):
        for snap in page:
            doc = snap.to_dict() or {}
            try:
                counts = results.count_by_status(ctx.firestore, snap.id)
                kept = counts.get(results.STORED, 0) + counts.get(results.DUPLICATE, 0)
                status = uploads.PARTIAL if kept else uploads.FAILED
                if not _update_unchanged(ctx, snap, {
                        "status": status, "reason": "gave_up",
                        "message": results.message_for("gave_up"), "counts": counts,
                        "counts_toward_quota": status != uploads.FAILED,
                        "completed_at": ctx.now, "updated_at": ctx.now}):
                    ctx.count("uploads_changed_meanwhile")
                    continue
                ctx.changed("stalled_uploads_finished")
                if doc.get("owner") and counts.get(results.STORED, 0):
                    ctx.count("settle_requested",
                              settle.request_settle_for_upload(ctx.clients, doc["owner"], snap.id))
            except Exception as err:  # noqa: BLE001 - counted; the next run retries it
                ctx.error("finish_stalled", err)
        if ctx.out_of_time():
            return False
    return True


def _finished_at(record: dict[str, Any]) -> Any:
    return record.get("completed_at") or record.get("updated_at")


def delete_raw_objects(ctx: JobContext) -> bool:
    """Step 3. False when the budget ran out."""
    settings = ctx.settings
    keep_cutoff = ctx.now - timedelta(hours=settings.raw_upload_keep_hours)
    orphan_cutoff = ctx.now - timedelta(hours=settings.reconcile_grace_hours)
    fs = ctx.firestore
    for page in blob_pages(ctx.clients.storage, settings.uploads_bucket, ctx.page_size,
                           prefix=ctx.scope):
        ctx.count("raw_objects_seen", len(page))
        parsed = {blob.name: _parse(blob.name) for blob in page}
        refs = {upload_id: fs.collection(uploads.UPLOADS).document(upload_id)
                for upload_id in {p[1] for p in parsed.values() if p}}
        records = {}
        if refs:
            for snap in fs.get_all(list(refs.values()),
                                   field_paths=["owner", "status", "completed_at", "updated_at"]):
                if snap.exists:
                    records[snap.id] = snap.to_dict() or {}
        for blob in page:
            target = parsed[blob.name]
            record = records.get(target[1]) if target else None
            if record is not None and record.get("owner") == target[0]:
                if record.get("status") not in uploads.FINAL_STATUSES:
                    ctx.count("raw_objects_in_flight")
                    continue
                finished = _finished_at(record)
                if finished is None or finished >= keep_cutoff:
                    ctx.count("raw_objects_kept")
                    continue
                counter = "raw_objects_deleted"
            else:
                if blob.time_created is None or blob.time_created >= orphan_cutoff:
                    ctx.count("raw_objects_kept")
                    continue
                counter = "orphan_raw_objects_deleted"
            ctx.delete_object(blob, counter, "delete_raw_object")
        if ctx.out_of_time():
            return False
    return True


def clean_uploads(ctx: JobContext) -> None:
    if expire_pending(ctx) and finish_stalled(ctx):
        delete_raw_objects(ctx)


def queries(firestore: Any, now: Any) -> list[Any]:
    """The job's queries (for the index check in the tests)."""
    return [stale_query(firestore, uploads.PENDING, "created_at", now).limit(1),
            stale_query(firestore, uploads.PROCESSING, "updated_at", now).limit(1)]
