"""Deleting one of the caller's studies, everywhere it lives.

A study lives in several places: its document, the series and instance documents under it,
the canonical instance objects (one prefix), the preview objects (one prefix), the upload
results that point at it (and the raw upload objects that carried it), and whatever later
features attach to it (shares, access records). Each place has one *deleter* in
:data:`DELETERS`, the registry of study-attached locations: a feature that attaches
something new to a study adds its deleter there, and the study's deletion covers it.

Resumable and idempotent: :func:`delete_study` first records ``deletions/{id}`` (owner, study
key, ``in_progress``, counts, requested_at; the id is a keyed hash of owner and study, so a
retry finds it), then runs every deleter. A deleter deletes what is there and counts it;
what is already gone counts as done. One failing deleter never stops the others: the record
stays ``in_progress``, names the failed locations, and the caller gets a retryable error;
sending the delete again (after a failure or a crash at any point) runs every deleter again
and finishes. Once all succeed the record is ``completed`` — the owner's record of the
deletion, readable by them under the rules. A study that does not exist and a study that is
someone else's get the same 404; deleting a study already deleted answers its record.

The study document goes first, so the study leaves search results and share links at once.
While the record is ``in_progress`` nothing written under the study stays: every writer
checks it after writing and deletes what it wrote (:func:`pacs.markers.refusal`).
An upload still processing that carried the study holds completion back (its raw object is
still being read and its results still point at the study): the deletion answers as
accepted, ``waiting_for`` ``upload``, and the scheduled ``resume_deletions`` job
(:mod:`pacs.retention.deletions`) finishes it once the upload is final, as it finishes any
deletion that stopped part way, without anyone sending it again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pacs import ids, log_events, markers, results
from pacs.clients import Clients, HasClients
from pacs.errors import TransientError
from pacs.indexing import catalog
from pacs.ingest import uploads
from pacs.links import deidentified
from pacs.locations import LocationFailed, delete_objects
from pacs.studies import search

COLLECTION = markers.DELETIONS
IN_PROGRESS, COMPLETED = markers.DELETION_IN_PROGRESS, "completed"
BATCH = 400
_KEY = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class StudyTarget(HasClients):
    """What a deleter gets: the clients, the owner, the study key and the request time."""

    clients: Clients
    uid: str
    study_key: str
    now: datetime


@dataclass(frozen=True)
class Deleter:
    """One study-attached location: ``run`` deletes what is there and returns how much.

    ``run`` must be idempotent (something already gone is done) and raise when any of it
    could not be deleted; it may delete the rest before raising.
    """

    name: str
    run: Callable[[StudyTarget], int]


deletion_id = markers.deletion_id


class UploadInProgress(LocationFailed):
    """An upload that carried the study is still being processed: the deletion finishes
    once it is final (writes for the study are refused meanwhile)."""


def _deletion_ref(target: StudyTarget) -> Any:
    return target.firestore.collection(COLLECTION).document(
        deletion_id(target.settings.hash_key, target.uid, target.study_key))


# --- Helpers shared by deleters -------------------------------------------------------------

def _study_prefix(object_name: str) -> str:
    """The folder of an object name (``a/b/c.dcm`` → ``a/b/``)."""
    return object_name.rpartition("/")[0] + "/"


def delete_prefix(storage: Any, bucket_name: str, prefix: str) -> int:
    """Delete every object under ``prefix`` (which must end with ``/``)."""
    if not prefix.endswith("/") or prefix == "/":
        raise ValueError("prefix must name a folder")
    bucket = storage.bucket(bucket_name)
    return delete_objects(bucket, [b.name for b in storage.list_blobs(bucket_name, prefix=prefix)])


def delete_refs(firestore: Any, refs: Sequence[Any],
                extra: Callable[[Any], None] | None = None) -> int:
    """Delete documents in batches; ``extra(batch)`` may add writes to the last batch."""
    deleted = 0
    chunks = [refs[i:i + BATCH] for i in range(0, len(refs), BATCH)] or [[]]
    for number, chunk in enumerate(chunks):
        batch = firestore.batch()
        for ref in chunk:
            batch.delete(ref)
        if extra is not None and number == len(chunks) - 1:
            extra(batch)
        batch.commit()
        deleted += len(chunk)
    return deleted


def owned_by_study_query(firestore: Any, collection: str, uid: str, study_key: str) -> Any:
    """``collection`` documents of this owner that name this study (``study_key`` field)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(collection).where(filter=FieldFilter("owner", "==", uid))
            .where(filter=FieldFilter("study_key", "==", study_key)))


def upload_results_query(firestore: Any, uid: str, study_key: str) -> Any:
    """Per-file upload results (collection group ``files``) pointing at this study."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection_group("files").where(filter=FieldFilter("owner", "==", uid))
            .where(filter=FieldFilter("study_key", "==", study_key)))


def stored_results_query(firestore: Any, upload_id: str) -> Any:
    """An upload's results that stored an instance (what makes it count toward the quota)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(uploads.UPLOADS).document(upload_id).collection("files")
            .where(filter=FieldFilter("status", "==", results.STORED)))


def processing_uploads_query(firestore: Any, uid: str) -> Any:
    """The owner's uploads still being processed: any of them may carry the study in members
    not read yet, so a deletion cannot complete before they are final."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(uploads.UPLOADS).where(filter=FieldFilter("owner", "==", uid))
            .where(filter=FieldFilter("status", "==", uploads.PROCESSING)))


def queries(firestore: Any, uid: str, study_key: str) -> list[Any]:
    """Every query the deleters run (for the index check in the tests)."""
    owned = ("shares", "access", "download_links")
    return [owned_by_study_query(firestore, c, uid, study_key) for c in owned] + [
        upload_results_query(firestore, uid, study_key),
        stored_results_query(firestore, "u"), processing_uploads_query(firestore, uid)]


def owned_docs_deleter(collection: str) -> Callable[[StudyTarget], int]:
    """A deleter for a top-level collection whose documents carry ``owner`` and
    ``study_key`` (shares, access records, ...)."""

    def run(target: StudyTarget) -> int:
        query = owned_by_study_query(target.firestore, collection, target.uid,
                                     target.study_key)
        return delete_refs(target.firestore, [s.reference for s in query.stream()])

    return run


# --- The deleters ---------------------------------------------------------------------------

def delete_shares(target: StudyTarget) -> int:
    """The study's shares, each de-identified copy (``pacs.links.deidentified``) first."""
    query = owned_by_study_query(target.firestore, "shares", target.uid, target.study_key)
    for snap in query.stream():
        if (snap.to_dict() or {}).get("deidentified"):
            deidentified.delete_copy(target.clients, target.uid, snap.id)
    return owned_docs_deleter("shares")(target)


def delete_study_document(target: StudyTarget) -> int:
    """The study document itself (its subcollections are :func:`delete_study_tree`'s)."""
    ref = catalog.study_ref(target.firestore, target.study_key)
    snap = ref.get(field_paths=["owner"])
    if not snap.exists:
        return 0
    if (snap.to_dict() or {}).get("owner") != target.uid:
        raise LocationFailed("study owned by someone else")  # cannot happen: keys are per owner
    ref.delete()
    return 1


def delete_previews(target: StudyTarget) -> int:
    """Series previews and the WADO-RS metadata objects beside them (derived bucket)."""
    prefix = _study_prefix(ids.preview_object(target.uid, target.study_key, "x"))
    return delete_prefix(target.clients.storage, target.settings.derived_bucket, prefix)


def delete_instance_objects(target: StudyTarget) -> int:
    """Canonical DICOM instances (instances bucket, one prefix)."""
    prefix = _study_prefix(ids.instance_object(target.uid, target.study_key, "x"))
    return delete_prefix(target.clients.storage, target.settings.instances_bucket, prefix)


def delete_study_tree(target: StudyTarget) -> int:
    """Every document under the study document, whatever the subcollection (series,
    instances, and what later features nest there)."""
    fs = target.firestore
    ref = catalog.study_ref(fs, target.study_key)
    deleted = sum(fs.recursive_delete(collection) for collection in ref.collections())
    if any(True for _ in ref.collections()):
        raise LocationFailed("documents remain under the study")
    return deleted


def delete_upload_traces(target: StudyTarget) -> int:
    """Upload results that point at the study, and the raw upload objects that carried it.
    Raises :class:`UploadInProgress` while any upload of the owner is still processing.

    The upload record stays (its results no longer point at the study): it counts the
    removed results (``results_removed``), and stops counting toward the quota once none
    of its stored results is left. The raw object of a final upload is no longer needed by
    anything and holds the study's bytes, so it goes; an upload still processing fails this
    location until it is final.
    """
    fs = target.firestore
    by_upload: dict[str, list[Any]] = {}
    for snap in upload_results_query(fs, target.uid, target.study_key).stream():
        by_upload.setdefault(snap.reference.parent.parent.id, []).append(snap.reference)
    deleted, errors = 0, []
    for upload_id, refs in sorted(by_upload.items()):
        try:
            deleted += _remove_upload_results(target, upload_id, refs)
        except Exception as err:  # noqa: BLE001 - reported below, other uploads continue
            errors.append(type(err).__name__)
    if errors and set(errors) != {UploadInProgress.__name__}:
        raise LocationFailed(f"{len(errors)} uploads not cleaned ({errors[0]})")
    # An upload still processing may not have recorded (or even read) its members of this
    # study yet: the deletion waits for every one of the owner's to be final.
    if errors or processing_uploads_query(fs, target.uid).limit(1).get():
        raise UploadInProgress("uploads still processing")
    return deleted


def _remove_upload_results(target: StudyTarget, upload_id: str, refs: list[Any]) -> int:
    fs, settings = target.firestore, target.settings
    upload_ref = fs.collection(uploads.UPLOADS).document(upload_id)
    snap = upload_ref.get()
    record = snap.to_dict() if snap.exists else None
    if record is not None:
        if record.get("owner") != target.uid:
            raise LocationFailed("upload owned by someone else")
        if record.get("status") not in uploads.FINAL_STATUSES:
            raise UploadInProgress("upload still processing")
        name = record.get("object") or ids.upload_object(target.uid, upload_id)
        delete_objects(target.clients.storage.bucket(settings.uploads_bucket), [name])

    def count_removed(batch: Any) -> None:
        from google.cloud import firestore as gfs

        if record is not None:
            batch.update(upload_ref, {"results_removed": gfs.Increment(len(refs)),
                                      "updated_at": target.now})

    deleted = delete_refs(fs, refs, extra=count_removed)
    if record is not None and record.get("counts_toward_quota"):
        remaining = stored_results_query(fs, upload_id).limit(1).get()
        if not remaining:
            upload_ref.update({"counts_toward_quota": False, "updated_at": target.now})
    return deleted


DELETERS: tuple[Deleter, ...] = (
    Deleter("study", delete_study_document),
    Deleter("shares", delete_shares),
    Deleter("previews", delete_previews),
    Deleter("instances", delete_instance_objects),
    Deleter("documents", delete_study_tree),
    Deleter("uploads", delete_upload_traces),
    Deleter("access", owned_docs_deleter("access")),
    # Single-use ZIP links of the study (pacs.dicomweb.downloads, a layer above this one).
    Deleter("download_links", owned_docs_deleter("download_links")),
)
"""The registry of study-attached locations, in the order they are deleted."""


def public_deletion(doc_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What the owner sees of a deletion record."""
    return {"id": doc_id, "study_id": doc.get("study_key"), "status": doc.get("status"),
            "counts": dict(doc.get("counts") or {}), "failed": list(doc.get("failed") or []),
            "waiting_for": doc.get("waiting_for"), "attempts": doc.get("attempts"),
            **{k: search.plain(doc.get(k)) for k in ("requested_at", "completed_at")}}


def _start(target: StudyTarget) -> tuple[Any, dict[str, Any]]:
    """Check ownership and record the deletion (or its new attempt); 404 when there is
    neither a study of the caller's nor a deletion of it to resume."""
    from google.cloud import firestore as gfs

    fs = target.firestore
    ref = _deletion_ref(target)
    record_snap = ref.get()
    record = record_snap.to_dict() if record_snap.exists else None
    if record is not None and record.get("owner") != target.uid:
        record = None
    study = catalog.study_ref(fs, target.study_key).get(field_paths=["owner"])
    owned = study.exists and (study.to_dict() or {}).get("owner") == target.uid
    if not owned and record is None:
        raise search.study_not_found()
    if record is None or (owned and record.get("status") == COMPLETED):
        # First request, or the study came back (uploaded again) after an earlier deletion.
        fresh = {"owner": target.uid, "study_key": target.study_key, "status": IN_PROGRESS,
                 "requested_at": target.now, "last_attempt_at": target.now, "attempts": 1,
                 "counts": {}, "steps": {}, "failed": [], "waiting_for": None,
                 "completed_at": None}
        ref.set(fresh)
        return ref, fresh
    ref.update({"status": IN_PROGRESS, "attempts": gfs.Increment(1),
                "last_attempt_at": target.now})
    return ref, record


def delete_study(clients: Clients, uid: str, study_id: Any, *,
                 deleters: Sequence[Deleter] = DELETERS,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> dict[str, Any]:
    """Delete one of the caller's studies everywhere (see the module docstring).

    Parameters
    ----------
    clients : Clients
    uid : str
        The caller.
    study_id : str
        The study key (``id`` in search results).
    deleters : sequence of Deleter, optional
        The locations to delete, in order (:data:`DELETERS`).
    now : callable, optional
        Clock.

    Returns
    -------
    dict
        The deletion record: ``id``, ``study_id``, ``status`` (``completed``, or
        ``in_progress`` with ``waiting_for`` ``upload`` when only an upload still being
        processed holds it back: it finishes by itself), ``counts`` per location
        (cumulative over attempts), ``failed``, ``attempts``, ``requested_at``,
        ``completed_at``.

    Raises
    ------
    NotFound
        No study of the caller's with that id, and no deletion of one to resume.
    TransientError
        ``deletion_incomplete``: some location failed; the others were deleted, the record
        names the failed ones, and sending the delete again finishes it.
    """
    from google.cloud import firestore as gfs

    if not isinstance(study_id, str) or not _KEY.fullmatch(study_id):
        raise search.study_not_found()
    target = StudyTarget(clients, uid, study_id, now())
    ref, _ = _start(target)
    failed, waiting = [], False
    for deleter in deleters:
        try:
            count = int(deleter.run(target))
        except Exception as err:  # noqa: BLE001 - one location never stops the others
            if isinstance(err, UploadInProgress):
                waiting = True
                ref.update({f"steps.{deleter.name}": "waiting"})
                continue
            failed.append(deleter.name)
            log_events.emit("WARNING", "study_location_failed", "study location not deleted",
                            uid=uid, study=study_id[:16], location=deleter.name,
                            error_type=type(err).__name__)
            ref.update({f"steps.{deleter.name}": "failed"})
            continue
        ref.update({f"counts.{deleter.name}": gfs.Increment(count),
                    f"steps.{deleter.name}": "done"})
    finished = now()
    if failed or waiting:
        ref.update({"failed": failed, "waiting_for": "upload" if waiting else None,
                    "last_attempt_at": finished})
    else:
        ref.update({"status": COMPLETED, "failed": [], "waiting_for": None,
                    "completed_at": finished})
    log_events.emit("INFO" if not failed else "WARNING", "study_deleted",
                    "study deletion incomplete" if failed else
                    "study deletion waiting for an upload" if waiting else "study deleted",
                    uid=uid, study=study_id[:16],
                    status=IN_PROGRESS if failed or waiting else COMPLETED,
                    failed=failed or None)
    if failed:
        raise TransientError("part of the study could not be deleted yet ("
                             + ", ".join(failed) + "); it is retried automatically within "
                             "minutes, or send the delete again", code="deletion_incomplete")
    snap = ref.get()
    return public_deletion(ref.id, snap.to_dict() or {})
