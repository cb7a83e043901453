"""``reconcile``: crashes leave no orphans.

Canonical instance objects and instance documents are two copies of one fact; a crash
between writing one and the other, or between deleting one and the other, leaves one
without the other. Once an orphan is older than ``reconcile_grace_hours`` (so nothing in
flight is touched):

- **object without document** — indexed again: :func:`pacs.indexing.catalog.index_instance` gets a
  synthesized finalize event, exactly as if Eventarc had delivered it, and the series is
  settled (counts, preview). An object that cannot be indexed (unreadable, named for another
  SOP instance, badly named) is deleted, and so is an object of a study whose deletion is
  under way or finished after the object was written (it must not bring the study back),
  or of a user being erased (the indexer deletes those itself).
- **document without object** — deleted, and its series settled so the counts are
  recomputed (``pacs.indexing.settle``).
- **preview without series** — a preview object (derived bucket) whose series document is
  gone, or that the series no longer points at, is deleted.

How it scales: the objects of the instances bucket are listed in name order, and the
instance documents (collection group ``instances``) are read ordered by their ``object``
field, the same order; the two streams are merged like sorted files, a page of each at a
time, so one pass reads every object and document once and holds two pages. The pass
position is saved in ``retention_state/reconcile`` after every page; a run that stops at
its time budget leaves it there and the next run (a continuation, or the next scheduled
one) goes on from it. When the pass finishes, the state is cleared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from pacs import ids
from pacs.events import StorageObjectEvent
from pacs.paging import blob_pages, prefix_end, query_pages
from pacs.retention.context import JobContext, delete_blob

STATE = "retention_state"
INSTANCES, PREVIEWS = "instances", "previews"
PREVIEWS_PREFIX = "previews/"
DOC_FIELDS = ["object", "owner", "study_key", "series_key", "indexed_at"]
UNINDEXABLE = ("unreadable", "mismatch", "ignored")


def _state_ref(ctx: JobContext) -> Any:
    name = "reconcile"
    if ctx.scope:
        name += "-" + ids.keyed_hash(ctx.settings.hash_key, "scope", ctx.scope)[:16]
    return ctx.firestore.collection(STATE).document(name)


def _save(ctx: JobContext, phase: str, cursor: str | None) -> None:
    _state_ref(ctx).set({"phase": phase, "cursor": cursor, "updated_at": ctx.now}, merge=True)


def instance_docs_query(firestore: Any, scope: str = "", after: str | None = None) -> Any:
    """Instance documents in ``object`` order, from after ``after``, within ``scope``."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = firestore.collection_group("instances")
    if after:
        query = query.where(filter=FieldFilter("object", ">", after))
    elif scope:
        query = query.where(filter=FieldFilter("object", ">=", scope))
    if scope:
        query = query.where(filter=FieldFilter("object", "<", prefix_end(scope)))
    return query.order_by("object").select(DOC_FIELDS)


def instance_doc_by_object_query(firestore: Any, name: str) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection_group("instances")
            .where(filter=FieldFilter("object", "==", name)).limit(1))


def merge(objects: Iterator[Any], docs: Iterator[Any]) -> Iterator[tuple[str, Any, Any]]:
    """Merge objects (by name) and instance documents (by their ``object`` field), both in
    ascending order: ``(key, blob or None, snapshot or None)`` per key."""
    blob = next(objects, None)
    snap = next(docs, None)
    matched = None
    while blob is not None or snap is not None:
        doc_key = (snap.to_dict() or {}).get("object", "") if snap is not None else None
        if snap is not None and doc_key == matched:
            yield doc_key, None, snap  # a second document of an object just matched
            snap = next(docs, None)
            continue
        if snap is None or (blob is not None and blob.name < doc_key):
            yield blob.name, blob, None
            blob = next(objects, None)
        elif blob is None or doc_key < blob.name:
            yield doc_key, None, snap
            snap = next(docs, None)
        else:
            matched = blob.name
            yield blob.name, blob, snap
            blob = next(objects, None)
            snap = next(docs, None)


def _flatten(pages: Iterator[list[Any]]) -> Iterator[Any]:
    for page in pages:
        yield from page


class _Repairs:
    """Orphans found in one page of the merge, repaired together."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.objects: list[Any] = []
        self.docs: list[Any] = []
        self.settle: set[tuple[str, str, str]] = set()

    def flush(self) -> None:
        for blob in self.objects:
            try:
                self._object_without_doc(blob)
            except Exception as err:  # noqa: BLE001 - counted; the next pass retries it
                self.ctx.error("reindex_object", err)
        for snap in self.docs:
            try:
                self._doc_without_object(snap)
            except Exception as err:  # noqa: BLE001 - counted; the next pass retries it
                self.ctx.error("remove_document", err)
        self._request_settle()
        self.objects, self.docs, self.settle = [], [], set()

    def _deleted_study(self, uid: str, study: str, blob: Any) -> bool:
        """The object's study is being deleted, or was deleted after the object was written."""
        from pacs.studies import deletion

        ref = self.ctx.firestore.collection(deletion.COLLECTION).document(
            deletion.deletion_id(self.ctx.settings.hash_key, uid, study))
        snap = ref.get(field_paths=["status", "completed_at"])
        if not snap.exists:
            return False
        record = snap.to_dict() or {}
        if record.get("status") == deletion.IN_PROGRESS:
            return True
        completed = record.get("completed_at")
        return bool(completed and blob.time_created and blob.time_created <= completed)

    def _object_without_doc(self, blob: Any) -> None:
        from pacs.indexing import catalog  # pydicom loads only when an orphan is found

        ctx = self.ctx
        parsed = catalog.parse_instance_object(blob.name)
        if parsed is None or self._deleted_study(parsed[0], parsed[1], blob):
            if delete_blob(blob):
                ctx.changed("objects_removed")
            return
        event = StorageObjectEvent(
            event_id="reconcile", event_type="google.cloud.storage.object.v1.finalized",
            bucket=ctx.settings.instances_bucket, name=blob.name,
            generation=str(blob.generation), size=int(blob.size or 0),
            content_type=blob.content_type or "", md5_hash=blob.md5_hash or "",
            time=ctx.now.isoformat())
        # Read the object itself: its parents may be what went missing, and only the full
        # header can recreate them.
        outcome = catalog.index_instance(ctx.clients, event, now=lambda: ctx.now, use_seal=False)
        if outcome == "indexed":
            ctx.changed("objects_reindexed")
            uid, study, _ = parsed
            series = (blob.metadata or {}).get("series_key") or self._series_of(blob.name)
            if series:
                self.settle.add((uid, study, series))
        elif outcome == "erased":
            ctx.changed("objects_removed")
        elif outcome in UNINDEXABLE:
            if delete_blob(blob):
                ctx.changed("objects_removed")
        else:
            ctx.count(f"objects_{outcome}")

    def _series_of(self, name: str) -> str | None:
        for snap in instance_doc_by_object_query(self.ctx.firestore, name).stream():
            return (snap.to_dict() or {}).get("series_key") or snap.reference.parent.parent.id
        return None

    def _doc_without_object(self, snap: Any) -> None:
        from google.api_core.exceptions import FailedPrecondition, NotFound

        ctx = self.ctx
        doc = snap.to_dict() or {}
        bucket = ctx.clients.storage.bucket(ctx.settings.instances_bucket)
        if doc.get("object") and bucket.get_blob(doc["object"]) is not None:
            ctx.count("documents_object_appeared")  # written since the listing: not orphaned
            return
        try:
            snap.reference.delete(
                option=ctx.firestore.write_option(last_update_time=snap.update_time))
        except (FailedPrecondition, NotFound):
            ctx.count("documents_changed_meanwhile")
            return
        ctx.changed("documents_removed")
        series_ref = snap.reference.parent.parent
        study = doc.get("study_key") or series_ref.parent.parent.id
        if doc.get("owner"):
            self.settle.add((doc["owner"], study, doc.get("series_key") or series_ref.id))

    def _request_settle(self) -> None:
        """Recompute counts (and the preview) of every series touched, through the settle
        function (the one place counts are computed)."""
        from pacs.indexing import settle

        if not self.settle:
            return
        clients = self.ctx.clients
        topic = clients.publisher.topic_path(clients.settings.project_id, settle.SETTLE_TOPIC)
        futures = [clients.publisher.publish(topic, json.dumps({
            "uid": uid, "upload_id": "", "study_key": study, "series_key": series,
            "expected": 0}).encode()) for uid, study, series in sorted(self.settle)]
        for future in futures:
            future.result(timeout=60)
        self.ctx.count("settle_requested", len(futures))


def reconcile_instances(ctx: JobContext, after: str | None) -> bool:
    """The merge of instance objects and documents, from after ``after``. False when the
    budget ran out (the position is saved)."""
    settings = ctx.settings
    grace = ctx.now - timedelta(hours=settings.reconcile_grace_hours)
    objects = _flatten(blob_pages(ctx.clients.storage, settings.instances_bucket,
                                  ctx.page_size, prefix=ctx.scope, start_offset=after))
    if after:
        objects = (b for b in objects if b.name > after)
    docs = _flatten(query_pages(instance_docs_query(ctx.firestore, ctx.scope, after),
                                ctx.page_size))
    repairs = _Repairs(ctx)
    seen = 0
    for key, blob, snap in merge(objects, docs):
        if blob is not None and snap is not None:
            ctx.count("instances_matched")
        elif blob is not None:
            if blob.time_created is not None and blob.time_created < grace:
                repairs.objects.append(blob)
            else:
                ctx.count("objects_within_grace")
        else:
            indexed_at = (snap.to_dict() or {}).get("indexed_at")
            if indexed_at is not None and indexed_at < grace:
                repairs.docs.append(snap)
            else:
                ctx.count("documents_within_grace")
        seen += 1
        if seen % ctx.page_size == 0:
            repairs.flush()
            _save(ctx, INSTANCES, key)
            ctx.progressed = True
            if ctx.out_of_time():
                return False
    repairs.flush()
    return True


def _preview_target(name: str) -> tuple[str, str, str] | None:
    """``previews/{uid}/{study}/{series}.{ext}`` (and the series' metadata objects,
    ``{series}.meta.{build}.json.gz``, ``{series}.frames.{build}.json.gz``, and ingest's
    parts, ``{series}.part.{upload}.{member}.json.gz``, which no series names: one older
    than the grace period was left by a crash or a race) → (uid, study, series)."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "previews" or "." not in parts[3]:
        return None
    return parts[1], parts[2], parts[3].split(".", 1)[0]


def _series_names(doc: dict[str, Any]) -> set[str]:
    """The derived objects a series document points at: its preview and metadata build."""
    metadata = doc.get("metadata") or {}
    return {n for n in ((doc.get("preview") or {}).get("object"), metadata.get("object"),
                        metadata.get("frames_object")) if n}


def reconcile_previews(ctx: JobContext, after: str | None) -> bool:
    """Previews whose series is gone or points elsewhere. False when the budget ran out."""
    from pacs.indexing import catalog

    settings = ctx.settings
    grace = ctx.now - timedelta(hours=settings.reconcile_grace_hours)
    fs = ctx.firestore
    for page in blob_pages(ctx.clients.storage, settings.derived_bucket, ctx.page_size,
                           prefix=PREVIEWS_PREFIX + ctx.scope, start_offset=after):
        page = [b for b in page if not after or b.name > after]
        old = [b for b in page if b.time_created is not None and b.time_created < grace]
        ctx.count("previews_seen", len(page))
        targets = {b.name: _preview_target(b.name) for b in old}
        refs = {t: catalog.series_ref(fs, t[1], t[2]) for t in targets.values() if t}
        series = {}
        if refs:
            for snap in fs.get_all(list(refs.values()),
                                   field_paths=["owner", "preview", "metadata"]):
                if snap.exists:
                    series[snap.reference.path] = snap.to_dict() or {}
        for blob in old:
            target = targets[blob.name]
            doc = series.get(refs[target].path) if target else None
            if doc is not None and doc.get("owner") == target[0] and (
                    blob.name in _series_names(doc)):
                continue
            ctx.delete_object(blob, "previews_removed", "remove_preview")
        if page:
            _save(ctx, PREVIEWS, page[-1].name)
            ctx.progressed = True
        if ctx.out_of_time():
            return False
    return True


def reconcile(ctx: JobContext) -> None:
    ref = _state_ref(ctx)
    snap = ref.get()
    state = snap.to_dict() if snap.exists else {}
    phase, cursor = state.get("phase") or INSTANCES, state.get("cursor")
    if cursor:
        ctx.count("resumed")
    if phase == INSTANCES:
        if not reconcile_instances(ctx, cursor):
            return
        phase, cursor = PREVIEWS, None
        _save(ctx, PREVIEWS, None)
    if not reconcile_previews(ctx, cursor):
        return
    ref.delete()
    ctx.count("passes_completed")


def queries(firestore: Any) -> list[Any]:
    """The job's queries (for the index check in the tests)."""
    return [instance_docs_query(firestore).limit(1),
            instance_docs_query(firestore, "u/", None).limit(1),
            instance_docs_query(firestore, "u/", "u/a").limit(1),
            instance_docs_query(firestore, "", "u/a").limit(1),
            instance_doc_by_object_query(firestore, "u/s/i.dcm")]
