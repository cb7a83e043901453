"""One resumable, versioned pass over every study: the shape of the backfill jobs
(:mod:`pacs.retention.search_refresh`, :mod:`pacs.retention.metadata_backfill`).

A pass reads the studies in document-id order, a page at a time (``ctx.page_size``), hands
each study to the job's function and saves its position in ``retention_state/{name}``
(``version``, ``cursor``, ``failed``) after each page, so a run stopped by its time budget
continues where it stopped. Once a pass finished at the job's version with every study
handled, later runs read one state document and stop (``done_version``); a pass with a
study the job could not handle is not done, and the next run passes again. Raising the
version makes the next scheduled run pass again. With ``ctx.scope`` (``"{uid}/"``, tests),
only that owner's studies are read, under a state document of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pacs import ids
from pacs.paging import query_pages
from pacs.retention.context import JobContext

STATE = "retention_state"
STUDIES = "studies"


def state_ref(ctx: JobContext, name: str) -> Any:
    """The pass's state document (one per scope)."""
    if ctx.scope:
        name += "-" + ids.keyed_hash(ctx.settings.hash_key, "scope", ctx.scope)[:16]
    return ctx.firestore.collection(STATE).document(name)


def run(ctx: JobContext, name: str, version: int, handle: Callable[[Any], bool]) -> None:
    """Pass over the studies (see the module docstring), calling ``handle(snapshot)`` for
    each; it returns False when that study could not be handled (the pass is then not
    done)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    fs = ctx.firestore
    ref = state_ref(ctx, name)
    state = ref.get().to_dict() or {}
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
            failed |= not handle(snap)
        ctx.count("studies_read", len(page))
        ref.set({"version": version, "cursor": page[-1].id, "failed": failed,
                 "updated_at": ctx.now}, merge=True)
        ctx.progressed = True
        if ctx.out_of_time():
            return
    ref.set({"version": version, "done_version": None if failed else version,
             "cursor": None, "failed": False, "updated_at": ctx.now}, merge=True)
