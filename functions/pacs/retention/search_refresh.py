"""``refresh_search_keys``: studies indexed before a change of the search-key layout get the
current one (the backfill of :mod:`pacs.indexing.search_keys`).

The keys are derived from the study document's own fields (and its settled modalities), so
recomputing them needs nothing else. :data:`VERSION` names the layout (2: legacy
``YYYY.MM.DD`` dates and ``HH:MM:SS`` times normalised, ``search.time``); once a pass has
finished at the current version, later runs read one state document and stop. Raising
:data:`VERSION` makes the next scheduled run backfill again.

The pass over the studies (pages in document-id order, the position saved in
``retention_state/refresh_search_keys``, continued after the time budget) is
:mod:`pacs.retention.study_pass`. A study is written only when its keys differ, with
the update conditioned on the document being unchanged since it was read: a study deleted
or erased meanwhile is never recreated (``update`` needs the document) and a concurrent
settle wins (the next pass retries it).
"""

from __future__ import annotations

from typing import Any

from pacs.indexing import search_keys
from pacs.retention import study_pass
from pacs.retention.context import JobContext

VERSION = 2
NAME = "refresh_search_keys"


def current_keys(doc: dict[str, Any]) -> dict[str, Any]:
    """The search keys a study document should hold now."""
    return search_keys.study_search_keys(doc, doc.get("modalities") or [])


def refresh_search_keys(ctx: JobContext) -> None:
    """Bring every study's ``search`` map to the current layout (see the module docstring);
    with ``ctx.scope`` (``"{uid}/"``, tests), only that owner's studies. A pass with a study
    it could not write is not done: the next run passes again."""
    study_pass.run(ctx, NAME, VERSION, lambda snap: _refresh(ctx, snap))


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
