"""``refresh_search_keys``: studies indexed before a change of the search-key layout get the
current one (the backfill of :mod:`pacs.indexing.search_keys`).

The keys are derived from the study document's own fields (and its settled modalities), so
recomputing them needs nothing else. :data:`VERSION` names the layout (2: legacy
``YYYY.MM.DD`` dates and ``HH:MM:SS`` times normalised, ``search.time``); once a pass has
finished at the current version, later runs read one state document and stop. Raising
:data:`VERSION` makes the next scheduled run backfill again.

A pass reads the studies in document-id order, a page at a time, saving its position in
``retention_state/refresh_search_keys`` after each page, so a run that stops at its time
budget is continued where it stopped. A study is written only when its keys differ, with
the update conditioned on the document being unchanged since it was read: a study deleted
or erased meanwhile is never recreated (``update`` needs the document) and a concurrent
settle wins (the next pass retries it).
"""

from __future__ import annotations

from typing import Any

from pacs import ids
from pacs.indexing import search_keys
from pacs.paging import query_pages
from pacs.retention.context import JobContext

VERSION = 2
STATE = "retention_state"
NAME = "refresh_search_keys"
STUDIES = "studies"


def _state_ref(ctx: JobContext) -> Any:
    name = NAME
    if ctx.scope:
        name += "-" + ids.keyed_hash(ctx.settings.hash_key, "scope", ctx.scope)[:16]
    return ctx.firestore.collection(STATE).document(name)


def current_keys(doc: dict[str, Any]) -> dict[str, Any]:
    """The search keys a study document should hold now."""
    return search_keys.study_search_keys(doc, doc.get("modalities") or [])


def refresh_search_keys(ctx: JobContext) -> None:
    """Bring every study's ``search`` map to the current layout (see the module docstring);
    with ``ctx.scope`` (``"{uid}/"``, tests), only that owner's studies."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    fs = ctx.firestore
    state_ref = _state_ref(ctx)
    state = state_ref.get().to_dict() or {}
    if state.get("done_version") == VERSION:
        return
    query = fs.collection(STUDIES)
    if ctx.scope:
        query = query.where(filter=FieldFilter("owner", "==", ctx.scope.rstrip("/")))
    cursor = state.get("cursor") if state.get("version") == VERSION else None
    if cursor:
        query = query.where(filter=FieldFilter("__name__", ">",
                                               fs.collection(STUDIES).document(cursor)))
    query = query.order_by("__name__")
    failed = bool(state.get("failed")) and cursor is not None
    for page in query_pages(query, ctx.page_size):
        for snap in page:
            failed |= not _refresh(ctx, snap)
        ctx.count("studies_read", len(page))
        state_ref.set({"version": VERSION, "cursor": page[-1].id, "failed": failed,
                       "updated_at": ctx.now}, merge=True)
        ctx.progressed = True
        if ctx.out_of_time():
            return
    # A pass with a study it could not write is not done: the next run passes again.
    state_ref.set({"version": VERSION, "done_version": None if failed else VERSION,
                   "cursor": None, "failed": False, "updated_at": ctx.now}, merge=True)


def _refresh(ctx: JobContext, snap: Any, attempts: int = 3) -> bool:
    """Write one study's current keys if they differ; False when it could not (changed
    underneath every time). A study gone meanwhile needs nothing."""
    from google.api_core.exceptions import FailedPrecondition, NotFound

    for _ in range(attempts):
        doc = snap.to_dict() or {}
        wanted = current_keys(doc)
        if doc.get("search") == wanted:
            return True
        try:
            snap.reference.update({"search": wanted}, option=ctx.firestore.write_option(
                last_update_time=snap.update_time))
            ctx.changed("studies_refreshed")
            return True
        except NotFound:
            return True
        except FailedPrecondition:
            snap = snap.reference.get()
            if not snap.exists:
                return True
    ctx.error("refresh_study", RuntimeError("changed underneath"))
    return False
