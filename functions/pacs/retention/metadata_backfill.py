"""``backfill_series_metadata``: series settled before WADO-RS metadata existed (or under an
older build layout) get their metadata and frame index (:mod:`pacs.indexing.series_metadata`),
so ``/metadata`` stops answering 503 ``metadata_pending`` for them.

A pass reads the studies in document-id order, a page at a time, and each study's series
(one query per study); a settled series (``counts_at`` set) whose ``metadata`` is missing or
older than :data:`pacs.indexing.series_metadata.VERSION` is rebuilt from its instance
documents, exactly as settle builds it (erasure and deletion markers checked after the
write). The position is saved in ``retention_state/backfill_series_metadata`` after each
page, so a run stopped by its time budget continues there; once a pass finished at the
current version, later runs read one state document and stop.
"""

from __future__ import annotations

from typing import Any

from pacs import ids
from pacs.errors import PacsError
from pacs.indexing import catalog, series_metadata
from pacs.paging import query_pages
from pacs.retention.context import JobContext

STATE = "retention_state"
NAME = "backfill_series_metadata"
STUDIES = "studies"
INSTANCE_FIELDS = ["object", "generation", "size", "InstanceNumber", "SOPInstanceUID"]


def _state_ref(ctx: JobContext) -> Any:
    name = NAME
    if ctx.scope:
        name += "-" + ids.keyed_hash(ctx.settings.hash_key, "scope", ctx.scope)[:16]
    return ctx.firestore.collection(STATE).document(name)


def needs_build(series_doc: dict[str, Any]) -> bool:
    """A settled series without a metadata build of the current layout."""
    pointer = series_doc.get("metadata") or {}
    return bool(series_doc.get("counts_at")) and (
        not pointer.get("object") or pointer.get("version", 1) < series_metadata.VERSION)


def backfill_series_metadata(ctx: JobContext) -> None:
    """Build the missing series metadata (see the module docstring); with ``ctx.scope``
    (``"{uid}/"``, tests), only that owner's studies."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    fs = ctx.firestore
    state_ref = _state_ref(ctx)
    state = state_ref.get().to_dict() or {}
    version = series_metadata.VERSION
    if state.get("done_version") == version:
        return
    query = fs.collection(STUDIES)
    if ctx.scope:
        query = query.where(filter=FieldFilter("owner", "==", ctx.scope.rstrip("/")))
    cursor = state.get("cursor") if state.get("version") == version else None
    if cursor:
        query = query.where(filter=FieldFilter("__name__", ">",
                                               fs.collection(STUDIES).document(cursor)))
    failed = bool(state.get("failed")) and cursor is not None
    for page in query_pages(query.order_by("__name__"), ctx.page_size):
        for snap in page:
            failed |= not _study(ctx, snap)
        ctx.count("studies_read", len(page))
        state_ref.set({"version": version, "cursor": page[-1].id, "failed": failed,
                       "updated_at": ctx.now}, merge=True)
        ctx.progressed = True
        if ctx.out_of_time():
            return
    # A pass with a series it could not build is not done: the next run passes again.
    state_ref.set({"version": version, "done_version": None if failed else version,
                   "cursor": None, "failed": False, "updated_at": ctx.now}, merge=True)


def _study(ctx: JobContext, snap: Any) -> bool:
    """Build what the study's series lack; False when one of them failed."""
    owner = (snap.to_dict() or {}).get("owner")
    ok = True
    for series in snap.reference.collection("series").select(
            ["owner", "counts_at", "metadata"]).stream():
        doc = series.to_dict() or {}
        if doc.get("owner") != owner or not needs_build(doc):
            continue
        instances = catalog.series_ref(ctx.firestore, snap.id, series.id).collection(
            "instances").select(INSTANCE_FIELDS).stream()
        docs = [{**(i.to_dict() or {}), "key": i.id} for i in instances]
        try:
            outcome = series_metadata.rebuild(ctx.clients, owner, snap.id, series.id, docs,
                                              ctx.now)
        except PacsError as err:
            ctx.error("backfill_series_metadata", err)
            ok = False
            continue
        ctx.changed(f"series_metadata_{outcome}")
    return ok
