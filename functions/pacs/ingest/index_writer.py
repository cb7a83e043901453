"""Ingest indexes what it stores: each object's instance document is written in the same
transaction as the object's per-file result, so ``on_instance_finalized`` has nothing to
do for it (the object carries ingest's tag, :func:`pacs.indexing.catalog.indexed_by_ingest`).

Ingest parsed every header it stores, and the documents are built by the indexer's own
function (:func:`pacs.indexing.catalog.instance_document`), so they hold the same fields.
What this saves per instance: the indexer's event handling (the erasure marker read, the
metadata read, the study read, the document write and the marker check after it) and one
Firestore commit, since 50 documents travel with their 50 results.

Series metadata: each stored instance's entry (its DICOM JSON and frame table, made from
the parse ingest already did) is written in part objects per series, so settling reads
parts instead of every object (:mod:`pacs.indexing.metadata_parts`). Entries wait, per
series, until about :data:`PART_CHARS` of them are in hand (or :data:`PENDING_CHARS` in
all, or the run ends: :meth:`IndexWriter.close`): an archive that interleaves its series
(W2's ten series, five members each per batch of 50) wrote ten parts of five entries per
batch, 200 writes, lists and deletes for 1,000 instances. A part is written before the
transaction of the batch that makes it due, and deleted with the batch's objects when that
refuses; the last ones are checked against the markers after they are written
(:func:`pacs.markers.refusal`). A part is a cache: entries lost in a crash make settle
read those objects.

Markers: the transaction reads the owner's erasure marker and the deletion record of every
study in the batch first (one round trip), so each document lands before the marker or the
deletion record, and the erasure's or deletion's passes, which follow them, delete it; or it
is not written at all, and the objects of the batch are deleted here (written first, checked
after, undone: :mod:`pacs.markers`). A study being deleted turns its members' results into
``rejected``/``study_deleted``, as when ingest finds the deletion before storing.

At least once: the cursor of an archive advances only past members whose results (and so
documents) are committed. A crash between an object's write and its batch's commit leaves
the upload event unacknowledged; the redelivery finds the object as its own earlier copy
(same upload and member) and writes the document then. Were every redelivery to fail, the
reconcile job indexes objects without documents (it does not trust the tag).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pacs import markers
from pacs import results as results_mod
from pacs.clients import Clients
from pacs.dicom import header as dicom_header
from pacs.indexing import catalog, metadata_parts
from pacs.ingest.instance_store import StoredInstance
from pacs.locations import delete_objects
from pacs.results import FileResult

#: A series' waiting entries are written as a part once their JSON reaches this many
#: characters (about 100 CT_small entries, 500 of W1's CT).
PART_CHARS = 1 << 20
#: All series' waiting entries together: past this, every series' are written (memory).
PENDING_CHARS = 8 << 20


@dataclass(frozen=True)
class _Stored:
    """What an instance document is built from, kept until its result is committed."""

    study: str
    series: str
    instance: str
    fields: dict[str, Any]
    is_image: bool
    blob: Any
    #: The instance's series metadata entry (:mod:`pacs.indexing.metadata_parts`), or None.
    entry: dict[str, Any] | None = None


class IndexWriter:
    """Commits batches of per-file results with the instance documents of the objects this
    run stored (``commit`` fits :class:`pacs.results.Recorder`). Thread-safe."""

    def __init__(self, clients: Clients, uid: str, upload_id: str) -> None:
        self._clients, self._uid, self._upload_id = clients, uid, upload_id
        self._stored: dict[int, _Stored] = {}
        self._lock = threading.Lock()
        # Series metadata entries not yet in a part: (study, series) -> member -> (instance
        # key, entry with its object generation), and their JSON characters.
        self._pending: dict[tuple[str, str], dict[int, tuple[str, dict[str, Any]]]] = {}
        self._pending_chars: dict[tuple[str, str], int] = {}

    def stored(self, index: int, stored: StoredInstance,
               header: dicom_header.InstanceHeader,
               entry: dict[str, Any] | None = None) -> None:
        """Remember member ``index``'s object (written now, or by this upload's earlier
        attempt) and its series metadata ``entry`` until its result is committed with its
        document (and the entry in its series' part)."""
        item = _Stored(stored.study_key, stored.series_key, stored.instance_key,
                       dict(header.fields), bool(header.is_image), stored.blob, entry)
        with self._lock:
            self._stored[index] = item

    def commit(self, batch: list[FileResult], at: datetime) -> None:
        """Write ``batch``'s results and its objects' documents in one transaction, unless
        the owner's erasure began (the batch's objects are deleted, and
        :class:`pacs.markers.ErasureBegan` raised)."""
        with self._lock:
            items = {r.index: self._stored.pop(r.index) for r in batch if r.index in self._stored}
            due = self._take_due(items)
        parts = self._write_parts(due)  # written first, undone below when refused
        deleted = self._write(batch, items, at)
        if deleted is None:
            self._remove(items.values())
            self._remove_parts(parts)
            with self._lock:
                self._pending, self._pending_chars = {}, {}
            raise markers.ErasureBegan(self._uid)
        self._remove(item for item in items.values() if item.study in deleted)
        self._remove_parts((study, name) for study, name in parts if study in deleted)
        if deleted:
            with self._lock:
                for group in [g for g in self._pending if g[0] in deleted]:
                    del self._pending[group], self._pending_chars[group]

    def close(self) -> None:
        """Write the entries still waiting (the run ends: the upload is done, or continues
        in another invocation), then check each part's study against the markers and
        delete what they refuse (written first, checked after, undone)."""
        with self._lock:
            due, self._pending, self._pending_chars = self._pending, {}, {}
        written = self._write_parts(due)
        refused = {study for study in {study for study, _ in written}
                   if markers.refusal(self._clients.firestore, self._clients.settings.hash_key,
                                      self._uid, study)}
        self._remove_parts((study, name) for study, name in written if study in refused)

    def _take_due(self, items: dict[int, _Stored]
                  ) -> dict[tuple[str, str], dict[int, tuple[str, dict[str, Any]]]]:
        """Add ``items``' entries to the waiting ones and take those due for a part: a
        series' once they reach :data:`PART_CHARS`, everyone's past :data:`PENDING_CHARS`.
        Called under the lock."""
        for index, item in items.items():
            if item.entry is None:
                continue
            group = (item.study, item.series)
            entry = {**item.entry, "g": str(item.blob.generation)}
            self._pending.setdefault(group, {})[index] = (item.instance, entry)
            self._pending_chars[group] = (self._pending_chars.get(group, 0)
                                          + len(entry.get("d") or "") + 64)
        every = sum(self._pending_chars.values()) > PENDING_CHARS
        due = {group: self._pending.pop(group) for group in list(self._pending)
               if every or self._pending_chars[group] >= PART_CHARS}
        for group in due:
            del self._pending_chars[group]
        return due

    def _write_parts(self, groups: dict[tuple[str, str], dict[int, tuple[str, dict[str, Any]]]]
                     ) -> list[tuple[str, str]]:
        """One part per series of ``groups`` (study, object name of each)."""
        if not groups:
            return []
        bucket = self._clients.storage.bucket(self._clients.settings.derived_bucket)
        return metadata_parts.write_parts(bucket, self._uid, self._upload_id, groups)

    def _remove_parts(self, parts: Iterable[tuple[str, str]]) -> None:
        names = [name for _, name in parts]
        if names:
            delete_objects(self._clients.storage.bucket(self._clients.settings.derived_bucket),
                           names)

    def _write(self, batch: list[FileResult], items: dict[int, _Stored],
               at: datetime) -> set[str] | None:
        """The transaction: None once the erasure began, else the studies being deleted
        (their members get no document and a ``study_deleted`` result)."""
        from google.cloud import firestore as gfs

        fs, key, uid, upload_id = (self._clients.firestore, self._clients.settings.hash_key,
                                   self._uid, self._upload_id)
        marker = markers.erasure_marker_ref(fs, key, uid)
        deletions = {study: markers.deletion_ref(fs, key, uid, study)
                     for study in sorted({item.study for item in items.values()})}

        @gfs.transactional
        def run(transaction: Any) -> set[str] | None:
            refs = [marker, *deletions.values()]
            snaps = {s.reference.path: s for s in fs.get_all(refs, transaction=transaction)}
            if snaps[marker.path].exists:
                return None
            deleted = {study for study, ref in deletions.items()
                       if _refuses(snaps[ref.path], items.values(), study)}
            for result in batch:
                item = items.get(result.index)
                if item is not None and item.study in deleted:
                    result = FileResult(result.index, result.name, results_mod.REJECTED,
                                        reason="study_deleted", size=result.size)
                elif item is not None:
                    transaction.set(
                        catalog.instance_ref(fs, item.study, item.series, item.instance),
                        catalog.instance_document(item.fields, uid, item.study, item.series,
                                                  item.blob, item.is_image, at))
                transaction.set(results_mod.result_ref(fs, upload_id, result.index),
                                result.document(uid, upload_id, at))
            return deleted

        return run(fs.transaction())

    def _remove(self, items: Iterable[_Stored]) -> None:
        """Delete objects whose documents were refused (this generation only)."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        bucket = self._clients.storage.bucket(self._clients.settings.instances_bucket)
        for item in items:
            try:
                bucket.blob(item.blob.name).delete(if_generation_match=int(item.blob.generation))
            except (NotFound, PreconditionFailed):
                pass


def _refuses(snap: Any, items: Iterable[_Stored], study: str) -> bool:
    """Whether a study's deletion record refuses documents of ``study``: its deletion is in
    progress, or completed after one of the batch's objects was written
    (:func:`pacs.markers.refusal`'s rule)."""
    if not snap.exists:
        return False
    doc = snap.to_dict() or {}
    if doc.get("status") == markers.DELETION_IN_PROGRESS:
        return True
    completed = doc.get("completed_at")
    return isinstance(completed, datetime) and any(
        item.study == study and item.blob.time_created is not None
        and item.blob.time_created <= completed for item in items)
