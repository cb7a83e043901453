"""``expire_links``: share records past their expiry are deleted, each leaving one access
record of kind ``share_expired``.

What a share link opens dies at ``expires_at`` anyway (the share refuses the token, and every
signed URL handed out under it expires no later); this job removes the record itself, the
token hash with it, so nothing of an expired link stays usable or stored. Viewer manifests
and signed URLs are never stored: a V4 signature carries its own expiry (at most
``link_ttl_cap_seconds``), so there is nothing of them to delete.

Idempotent and overlap-safe without a transaction: the share's deletion and its access
record go into one batch, and the record's id is a keyed hash of the share id, so two runs
that both see a share write the same record once and delete the share twice (already gone
is done).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pacs import ids
from pacs.links import access_log, deidentified
from pacs.paging import query_pages
from pacs.retention.context import JobContext

SHARES = "shares"  # pacs.links.shares.COLLECTION (not imported: it pulls in the URL signer)
SHARE_FIELDS = ["owner", "study_key", "expires_at", "views", "max_views", "revoked",
                "deidentified"]
SHARES_PER_BATCH = 200  # two writes each, well inside a commit's limit
SYSTEM_CLIENT = access_log.ClientInfo(ip=None, user_agent=None)


class _Captured:
    """Stands in for the Firestore client in :func:`pacs.links.access_log.record`, which owns the
    access record's shape and checks; the record is kept here instead of being added, so it
    can go into the same batch as the share's deletion, under a deterministic id."""

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None

    def collection(self, name: str) -> _Captured:
        if name != access_log.COLLECTION:
            raise ValueError(f"unexpected collection {name!r}")
        return self

    def add(self, document: dict[str, Any]) -> tuple[None, Any]:
        self.document = dict(document)
        return None, SimpleNamespace(id="")


def expiry_record(share_id: str, share: dict[str, Any]) -> dict[str, Any]:
    """The access record of one expired share (as :func:`pacs.links.access_log.record` builds it).

    Parameters
    ----------
    share_id : str
    share : dict
        The share document.

    Returns
    -------
    dict
        ``owner``, ``study_key``, ``kind`` (``share_expired``), ``actor`` (``retention``),
        ``actor_type`` (``system``), ``at`` (the share's expiry), ``ip`` and ``user_agent``
        (none: no request), ``share_id``, ``views``, ``max_views``, ``revoked``.
    """
    captured = _Captured()
    access_log.record(captured, owner=share["owner"], study_key=share["study_key"],
                      kind="share_expired", actor="retention", actor_type="system",
                      client=SYSTEM_CLIENT, at=share["expires_at"],
                      details={"share_id": share_id, "views": int(share.get("views") or 0),
                               "max_views": share.get("max_views"),
                               "revoked": bool(share.get("revoked"))})
    assert captured.document is not None
    return captured.document


def expiry_record_id(key: bytes, share_id: str) -> str:
    """The id of a share's expiry record: the same for every run that expires it."""
    return ids.keyed_hash(key, "share_expired", share_id)[:20]


def expired_shares_query(firestore: Any, now: Any) -> Any:
    """Shares whose expiry has passed, oldest expiry first."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(SHARES).where(filter=FieldFilter("expires_at", "<=", now))
            .order_by("expires_at").select(SHARE_FIELDS))


def expire_links(ctx: JobContext) -> None:
    """Delete every share past its expiry, keeping one access record of each."""
    fs = ctx.firestore
    access = fs.collection(access_log.COLLECTION)
    for page in query_pages(expired_shares_query(fs, ctx.now), ctx.page_size):
        ctx.count("shares_seen", len(page))
        for start in range(0, len(page), SHARES_PER_BATCH):
            chunk = page[start:start + SHARES_PER_BATCH]
            batch = fs.batch()
            writes = 0
            for snap in chunk:
                share = snap.to_dict() or {}
                if share.get("deidentified") and share.get("owner"):
                    try:  # the copy goes first: a failure keeps the share for the next run
                        deidentified.delete_copy(ctx.clients, share["owner"], snap.id)
                    except Exception as err:  # noqa: BLE001 - counted; retried next run
                        ctx.error("expire_share_copy", err, n=1)
                        continue
                if not share.get("owner") or not share.get("study_key"):
                    batch.delete(snap.reference)  # malformed: nothing to record it under
                else:
                    record_id = expiry_record_id(ctx.settings.hash_key, snap.id)
                    batch.set(access.document(record_id), expiry_record(snap.id, share))
                    batch.delete(snap.reference)
                writes += 1
            try:
                batch.commit()
            except Exception as err:  # noqa: BLE001 - counted; the next run retries them
                ctx.error("expire_share", err, n=writes)
                continue
            ctx.changed("shares_expired", writes)
        if ctx.out_of_time():
            return


def queries(firestore: Any, now: Any) -> list[Any]:
    """The job's queries (for the index check in the tests)."""
    return [expired_shares_query(firestore, now).limit(1)]
