"""Markers that every writer of user data respects: the erasure marker of a user, written
before an erasure deletes anything (and kept as the pseudonymous receipt after it), and the
deletion record of a study, ``in_progress`` from the moment its deletion starts until every
location of the study is gone.

A check made before a write and the write itself are two steps: an erasure that begins
between them would miss what the write adds. Two ways close the gap:

- *Check inside the transaction that writes* (:func:`guarded_write`), for writes whose
  transaction reads only the markers (per-file results, upload records): Firestore
  serialises it with the marker's write, so the write lands before the marker (and the
  erasure, which runs after the marker, deletes it) or sees the marker and writes nothing.
- *Write first, check after, undo* (:func:`refusal`), for objects, which cannot join a
  transaction, and for the study, series and instance documents, which settle updates
  while instances are indexed: a transaction that read those hot documents would abort
  against every settle. Whatever the check after the write does not refuse was written
  before the marker, so the erasure's or deletion's passes, which follow it, delete it;
  whatever it refuses, the writer deletes again itself.

The same holds for a study's deletion record: while it is ``in_progress`` nothing stays
under the study, and the deletion does not complete while an upload of its owner is still
being processed, so a completed deletion refuses only what was written before it completed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pacs import ids

ERASURES = "erasures"
DELETIONS = "deletions"
DELETION_IN_PROGRESS = "in_progress"


class ErasureBegan(Exception):
    """The owner's erasure began while their data was being written: stop, write no more."""


class StudyDeleted(Exception):
    """The study is being deleted: nothing more is written under it."""


def deletion_id(key: bytes, uid: str, study_key: str) -> str:
    """The ``deletions`` document id of (owner, study): a keyed hash, so retries find it."""
    return ids.keyed_hash(key, "deletion", uid, study_key)


def deletion_ref(firestore: Any, key: bytes, uid: str, study_key: str) -> Any:
    return firestore.collection(DELETIONS).document(deletion_id(key, uid, study_key))


def erasure_marker_ref(firestore: Any, key: bytes, uid: str) -> Any:
    """The marker's document. Its id is a keyed hash, so the marker does not hold the uid."""
    return firestore.collection(ERASURES).document(ids.erasure_marker(key, uid))


def erasure_pending(firestore: Any, key: bytes, uid: str) -> bool:
    """True once an erasure of ``uid`` began (and for as long as its receipt is kept)."""
    return erasure_marker_ref(firestore, key, uid).get().exists


def stop_if_erased(firestore: Any, key: bytes, uid: str) -> Callable[[], None]:
    """A check that raises :class:`ErasureBegan` once the owner's erasure marker exists."""

    def check() -> None:
        if erasure_pending(firestore, key, uid):
            raise ErasureBegan(uid)

    return check


def refusal(firestore: Any, key: bytes, uid: str, study: str | None = None,
            written_at: datetime | None = None) -> str | None:
    """Why a write just made for ``uid`` (under ``study``) must not stay: ``erased`` once the
    owner's erasure began, ``study_deleted`` while the study's deletion is in progress, or
    when it completed after ``written_at`` (the write belongs to the deleted study); else
    None. One round trip (both documents are read together)."""
    marker = erasure_marker_ref(firestore, key, uid)
    refs = [marker] + ([deletion_ref(firestore, key, uid, study)] if study is not None else [])
    snaps = {s.reference.path: s for s in firestore.get_all(refs)}
    if snaps[marker.path].exists:
        return "erased"
    if study is None:
        return None
    record = snaps[refs[1].path]
    doc = (record.to_dict() or {}) if record.exists else {}
    if doc.get("status") == DELETION_IN_PROGRESS:
        return "study_deleted"
    completed = doc.get("completed_at")
    if written_at is not None and isinstance(completed, datetime) and written_at <= completed:
        return "study_deleted"
    return None


def raise_refusal(outcome: str | None, uid: str, study: str | None) -> None:
    """Raise what :func:`refusal` found, if anything."""
    if outcome == "erased":
        raise ErasureBegan(uid)
    if outcome == "study_deleted":
        raise StudyDeleted(study)


def guarded_write(firestore: Any, key: bytes, uid: str, write: Callable[..., Any],
                  reads: tuple[Any, ...] = (), study: str | None = None) -> Any:
    """Run ``write(transaction, *snapshots)`` in a transaction that first reads the owner's
    erasure marker (raising :class:`ErasureBegan` when it exists), the deletion record of
    ``study`` when given (raising :class:`StudyDeleted` while it is in progress), and the
    documents ``reads``, whose snapshots are passed to ``write``. All reads are one
    round trip; the client retries the transaction on contention. Returns what ``write``
    returns."""
    from google.cloud import firestore as gfs

    marker = erasure_marker_ref(firestore, key, uid)
    deletion = deletion_ref(firestore, key, uid, study) if study is not None else None
    refs = [marker, *([deletion] if deletion is not None else []), *reads]

    @gfs.transactional
    def run(transaction: Any) -> Any:
        snaps = {s.reference.path: s for s in firestore.get_all(refs, transaction=transaction)}
        if snaps[marker.path].exists:
            raise ErasureBegan(uid)
        if deletion is not None:
            record = snaps[deletion.path]
            if record.exists and (record.to_dict() or {}).get("status") == DELETION_IN_PROGRESS:
                raise StudyDeleted(study)
        return write(transaction, *(snaps[ref.path] for ref in reads))

    return run(firestore.transaction())
