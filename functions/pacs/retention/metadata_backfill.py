"""``backfill_series_metadata``: series settled before WADO-RS metadata existed (or under an
older build layout) get their metadata and frame index (:mod:`pacs.indexing.series_metadata`),
so ``/metadata`` stops answering 503 ``metadata_pending`` for them.

A pass reads the studies in document-id order, a page at a time, and each study's series
(one query per study); a settled series (``counts_at`` set) whose ``metadata`` is missing or
older than :data:`pacs.indexing.series_metadata.VERSION` is rebuilt from its instance
documents, exactly as settle builds it (erasure and deletion markers checked after the
write). The pass itself (pages, the position saved in
``retention_state/backfill_series_metadata``, continuing after the time budget, one state
read once done at the current version) is :mod:`pacs.retention.study_pass`.
"""

from __future__ import annotations

from typing import Any

from pacs.errors import PacsError
from pacs.indexing import catalog, series_metadata
from pacs.retention import study_pass
from pacs.retention.context import JobContext

NAME = "backfill_series_metadata"
INSTANCE_FIELDS = ["object", "generation", "size", "InstanceNumber", "SOPInstanceUID"]


def needs_build(series_doc: dict[str, Any]) -> bool:
    """A settled series without a metadata build of the current layout."""
    pointer = series_doc.get("metadata") or {}
    return bool(series_doc.get("counts_at")) and (
        not pointer.get("object") or pointer.get("version", 1) < series_metadata.VERSION)


def backfill_series_metadata(ctx: JobContext) -> None:
    """Build the missing series metadata (see the module docstring); with ``ctx.scope``
    (``"{uid}/"``, tests), only that owner's studies. A pass with a series it could not
    build is not done: the next run passes again."""
    study_pass.run(ctx, NAME, series_metadata.VERSION, lambda snap: _study(ctx, snap))


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
