"""``on_upload_finalized``'s domain logic: check the upload against its record, route by
magic bytes, stream archives member by member in checkpointed batches, and record a
result per file.

Idempotency: result documents have fixed ids (the member index), instance objects are
written create-only and recognise their own earlier copy, and counts are recomputed from
the results. So duplicate, concurrent and post-crash deliveries converge on the same state.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from pacs import ids, log_events, markers, results
from pacs.clients import Clients
from pacs.dicom import header as dicom_header
from pacs.events import StorageObjectEvent
from pacs.indexing import catalog, metadata_parts
from pacs.ingest.index_writer import IndexWriter
from pacs.ingest.instance_store import MemberTooLarge, SpoolBudget, spool, store_instance
from pacs.ingest.uploads import FAILED, FINAL_STATUSES, PENDING, PROCESSING, UPLOADS
from pacs.results import FileResult
from pacs.zip import safety as zip_safety

# Leave this share of the deadline for writing the checkpoint and publishing.
DEADLINE_SAFETY = 0.8
# Members parsed and stored at once (their storage and Firestore round trips overlap).
MEMBER_WORKERS = 8


@dataclass(frozen=True)
class Batch:
    """Where to (re)start processing an upload."""

    uid: str
    upload_id: str
    generation: str
    cursor: int = 0


def parse_upload_object(name: str) -> tuple[str, str] | None:
    """``{uid}/{uploadId}`` → (uid, upload_id), or None for any other shape."""
    parts = name.split("/")
    if len(parts) != 2 or not all(p and p.isascii() and p.replace("-", "").replace("_", "").isalnum()
                                  for p in parts):
        return None
    return parts[0], parts[1]


def _now() -> datetime:
    return datetime.now(UTC)


def _delete_object(clients: Clients, name: str, generation: str) -> None:
    from google.api_core.exceptions import NotFound, PreconditionFailed

    blob = clients.storage.bucket(clients.settings.uploads_bucket).blob(name)
    try:
        blob.delete(if_generation_match=int(generation) if generation else None)
    except (NotFound, PreconditionFailed):
        pass  # already gone, or replaced: nothing of this generation is left


def handle_upload_finalized(clients: Clients, event: StorageObjectEvent,
                            now: Callable[[], datetime] = _now) -> str:
    """Validate a finalized upload object against its record and process it.

    Returns a short outcome word for the log (``ignored``, ``rejected``, ``done``, ...).
    """
    settings = clients.settings
    if event.bucket != settings.uploads_bucket:
        return "ignored"
    parsed = parse_upload_object(event.name)
    if parsed is None:
        _delete_object(clients, event.name, event.generation)
        log_events.upload_refused(None, None, "bad_object_name")
        return "rejected"
    uid, upload_id = parsed
    if markers.erasure_pending(clients.firestore, settings.hash_key, uid):
        # Checked first: for a user being (or already) erased nothing is written.
        _delete_object(clients, event.name, event.generation)
        log_events.upload_refused(uid, upload_id, "erased")
        return "erased"
    ref = clients.firestore.collection(UPLOADS).document(upload_id)
    snap = ref.get()
    record = snap.to_dict() if snap.exists else None
    if record is None or record.get("owner") != uid:
        _delete_object(clients, event.name, event.generation)
        log_events.upload_refused(uid, upload_id, "no_matching_record")
        return "rejected"
    if record.get("status") in FINAL_STATUSES:
        return "duplicate_event"
    if record.get("generation") not in (None, event.generation):
        _delete_object(clients, event.name, event.generation)
        log_events.upload_refused(uid, upload_id, "unexpected_generation")
        return "rejected"
    if event.size != record.get("size"):
        _delete_object(clients, event.name, event.generation)
        ref.update({"status": FAILED, "reason": "size_mismatch",
                    "message": results.message_for("size_mismatch"), "updated_at": now(),
                    "counts_toward_quota": False})
        log_events.upload_refused(uid, upload_id, "size_mismatch")
        return "rejected"
    if record.get("status") == PENDING:
        ref.update({"status": PROCESSING, "generation": event.generation, "started_at": now(),
                    "updated_at": now()})
    return process(clients, Batch(uid, upload_id, event.generation, int(record.get("cursor", 0))),
                   now=now)


def handle_continuation(clients: Clients, payload: dict[str, Any],
                        now: Callable[[], datetime] = _now) -> str:
    """A checkpoint message: continue the upload where the last batch stopped."""
    batch = Batch(str(payload["uid"]), str(payload["upload_id"]), str(payload["generation"]),
                  int(payload["cursor"]))
    if markers.erasure_pending(clients.firestore, clients.settings.hash_key, batch.uid):
        return "erased"
    snap = clients.firestore.collection(UPLOADS).document(batch.upload_id).get()
    record = snap.to_dict() if snap.exists else None
    if (record is None or record.get("owner") != batch.uid or record.get("status") != PROCESSING
            or record.get("generation") != batch.generation):
        return "stale_continuation"
    return process(clients, batch, now=now)


def process(clients: Clients, batch: Batch, now: Callable[[], datetime] = _now,
            clock: Callable[[], float] = time.monotonic) -> str:
    """Process the upload from ``batch.cursor`` until done or near the deadline."""
    settings = clients.settings
    started = clock()
    budget = settings.event_deadline_seconds * DEADLINE_SAFETY
    blob = clients.storage.bucket(settings.uploads_bucket).blob(
        f"{batch.uid}/{batch.upload_id}", generation=int(batch.generation))
    try:
        outcome = _process_object(clients, batch, blob, started, budget, clock, now)
    except markers.ErasureBegan:
        # The owner's erasure began meanwhile (a large single file still spooling, say):
        # what was written before it is the erasure's to delete, nothing is written after.
        log_events.upload_refused(batch.uid, batch.upload_id, "erased")
        return "erased"
    if outcome != "done":
        return outcome
    return finish(clients, batch, now)


def _process_object(clients: Clients, batch: Batch, blob: Any, started: float, budget: float,
                    clock: Callable[[], float], now: Callable[[], datetime]) -> str:
    """Route the upload object by its magic bytes and process it (``done`` when every
    member has its result, else how it stopped)."""
    # Each 4 MiB range is read in one piece: the library's default streams it in 8 KiB
    # pieces through Python, which cost about 3x the CPU per MB (issue 17, README bench).
    with blob.open("rb", chunk_size=4 * 1024**2, single_shot_download=True) as reader:
        head = reader.read(132)
        kind = zip_safety.sniff(head)
        reader.seek(0)
        if kind == "dicom":
            record = clients.firestore.collection(UPLOADS).document(batch.upload_id).get().to_dict()
            writer = IndexWriter(clients, batch.uid, batch.upload_id)
            result = ingest_one(clients, batch, 0, str(record.get("filename", "")), reader,
                                now=now, writer=writer)
            writer.commit([result], now())  # its document too, in the result's transaction
        elif kind == "zip":
            return _process_archive(clients, batch, reader, started, budget, clock, now)
        else:
            code = {"polyglot": "polyglot"}.get(kind, "empty" if not head else "unknown_type")
            _fail_upload(clients, batch, code, now)
    return "done"


def _process_archive(clients: Clients, batch: Batch, reader: IO[bytes], started: float,
                     budget: float, clock: Callable[[], float],
                     now: Callable[[], datetime]) -> str:
    """Read members in order (the archive is one stream), and parse and store them on a
    small pool: storage and Firestore round trips dominate, so they overlap. At most
    ``2 * MEMBER_WORKERS`` members wait at once, holding at most ``ingest_spool_bytes``
    spooled bytes (:class:`SpoolBudget`), which bounds memory; at a checkpoint the pool is
    drained and the batched results written first, so the cursor never skips an unfinished
    or unrecorded member."""
    limits = zip_safety.ZipLimits.from_settings(clients.settings)
    try:
        archive = zip_safety.SafeArchive(reader, limits)
    except zip_safety.ArchiveRejected as err:
        _fail_upload(clients, batch, err.code, now)
        return "done"
    slots = threading.BoundedSemaphore(2 * MEMBER_WORKERS)
    spool_budget = SpoolBudget(clients.settings.ingest_spool_bytes)
    pending: list[Future] = []
    by_instance: dict[str, Future] = {}
    # An erasure can begin while a long archive is processed: every batch of results and
    # every new series is written in a transaction that reads its marker first, so at most
    # one batch is in flight when it appears (objects stored meanwhile are deleted by the
    # indexer, which checks too).
    parents = catalog.ParentDocuments(clients.settings.hash_key)
    # Results are committed with the instance documents of the objects stored (pacs.ingest.
    # index_writer): the indexer skips objects tagged as indexed here.
    writer = IndexWriter(clients, batch.uid, batch.upload_id)
    recorder = results.Recorder(clients.firestore, clients.settings.hash_key, batch.uid,
                                batch.upload_id, now, commit=writer.commit)

    erased = threading.Event()

    def finish(index: int, name: str, prepared: Any, keys: ids.InstanceKeys,
               reserved: int) -> None:
        try:
            recorder.add(_store_prepared(clients, batch, index, name, prepared, keys, parents,
                                         now, writer))
        except markers.ErasureBegan:
            erased.set()
            raise
        finally:
            spool_budget.release(reserved)
            slots.release()

    outcome = "done"
    with ThreadPoolExecutor(max_workers=MEMBER_WORKERS) as pool:
        try:
            for member in archive.members():
                if erased.is_set():
                    raise markers.ErasureBegan(batch.uid)
                if member.index < batch.cursor:
                    continue
                if clock() - started > budget:
                    _drain(pending)
                    recorder.flush()
                    writer.close()  # the entries still waiting, before another invocation
                    _checkpoint(clients, batch, member.index, now)
                    return "continued"
                reserved = spool_budget.acquire(member.size)
                try:
                    prepared = _read_member(clients, archive, member)
                except BaseException:
                    spool_budget.release(reserved)
                    raise
                if isinstance(prepared, FileResult):
                    spool_budget.release(reserved)
                    recorder.add(prepared)
                    continue
                # Two members holding one SOP Instance UID: the earlier one is written first,
                # so "first copy kept" follows the archive's order, not thread timing.
                keys = ids.instance_keys(clients.settings.hash_key, batch.uid,
                                         prepared[3].fields)
                if keys.instance in by_instance:
                    by_instance[keys.instance].result()
                slots.acquire()
                future = pool.submit(finish, member.index, member.display_name, prepared, keys,
                                     reserved)
                by_instance[keys.instance] = future
                pending.append(future)
            _drain(pending)
            recorder.flush()
            writer.close()
        except markers.ErasureBegan:
            outcome = "erased"
        finally:
            for future in pending:
                future.cancel()
    if outcome == "erased":
        # Members stored meanwhile whose results wait in the recorder: their commit sees the
        # marker and deletes their objects (the indexer does not check tagged objects).
        try:
            recorder.flush()
        except markers.ErasureBegan:
            pass
        log_events.upload_refused(batch.uid, batch.upload_id, "erased")
    return outcome


def _drain(futures: list[Future]) -> None:
    """Wait for every submitted member; re-raise the first failure (the event is retried)."""
    for future in futures:
        future.result()
    futures.clear()


def _read_member(clients: Clients, archive: Any, member: Any) -> FileResult | tuple:
    """Classify a member and spool its bytes; a refusal is returned as its result."""
    skip_kinds = {"directory": results.SKIPPED, "dicomdir": results.SKIPPED}
    if member.kind in skip_kinds:
        return FileResult(member.index, member.display_name, skip_kinds[member.kind],
                          reason=member.kind, size=member.size)
    if member.kind != "file":
        return FileResult(member.index, member.display_name, results.REJECTED, reason=member.kind,
                          size=member.size)
    try:
        with archive.open(member) as stream:
            head = stream.read(132)
            kind = zip_safety.sniff(head)
            if kind == "zip":
                return FileResult(member.index, member.display_name, results.REJECTED,
                                  reason="nested_archive", size=member.size)
            if kind != "dicom":
                code = "polyglot" if kind == "polyglot" else ("empty" if not head else "not_dicom")
                return FileResult(member.index, member.display_name, results.REJECTED,
                                  reason=code, size=member.size)
            prepared = _spool(clients, member.index, member.display_name, _Prefixed(head, stream),
                              entry=True)
    except zip_safety.ArchiveRejected as err:
        return FileResult(member.index, member.display_name, results.REJECTED, reason=err.code,
                          size=member.size)
    return prepared


class _Prefixed:
    """A stream whose first bytes were already read (to sniff them)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = self._head, b""
            if n < 0:
                return out + self._rest.read()
            return out + self._rest.read(max(0, n - len(out)))
        return self._rest.read(n)


def _spool(clients: Clients, index: int, name: str, stream: Any,
           entry: bool = False) -> FileResult | tuple:
    """Spool and parse one file: (data, size, sha256, header, its series metadata entry
    when ``entry`` is asked for, else None), or its refusal."""
    settings = clients.settings
    try:
        data, size, sha256 = spool(stream, settings.zip_max_member_bytes)
    except MemberTooLarge:
        return FileResult(index, name, results.REJECTED, reason="member_too_large")
    if size == 0:
        data.close()
        return FileResult(index, name, results.REJECTED, reason="empty", size=0)
    try:
        header, ds = dicom_header.read_header_dataset(
            data, size, max_header_bytes=settings.header_max_bytes,
            inflate_max_bytes=settings.inflate_max_bytes)
    except dicom_header.HeaderRejected as err:
        data.close()
        return FileResult(index, name, results.REJECTED, reason=err.code, size=size)
    made = metadata_parts.safe_entry(header, ds, data, size) if entry else None
    return data, size, sha256, header, made


def _store_prepared(clients: Clients, batch: Batch, index: int, name: str, prepared: tuple,
                    keys: ids.InstanceKeys, parents: catalog.ParentDocuments,
                    now: Callable[[], datetime] = _now,
                    writer: IndexWriter | None = None) -> FileResult:
    """Store one spooled, parsed DICOM file and classify the outcome. Its series and study
    documents exist before the object does (the indexer relies on it)."""
    data, size, sha256, header, entry = prepared
    try:
        parents.ensure(clients.firestore, header.fields, batch.uid, keys.study, keys.series,
                       now())
    except markers.StudyDeleted:
        # The owner deleted this study while the upload was processed: deletion wins.
        data.close()
        return FileResult(index, name, results.REJECTED, reason="study_deleted", size=size)
    with data:
        stored = store_instance(clients.storage, clients.settings, batch.uid, batch.upload_id,
                                index, data, size, sha256, header, keys,
                                indexed_here=writer is not None)
    if writer is not None and stored.status == results.STORED:
        writer.stored(index, stored, header, entry)
    reason = {results.DUPLICATE: "duplicate", results.CONFLICT: "conflict"}.get(stored.status)
    log_events.instance_stored(batch.uid, batch.upload_id, index, stored.status,
                               stored.instance_key[:16])
    return FileResult(index, name, stored.status, reason=reason, size=size,
                      study_key=stored.study_key, series_key=stored.series_key,
                      instance_key=stored.instance_key, sha256=sha256)


def ingest_one(clients: Clients, batch: Batch, index: int, name: str, stream: Any,
               now: Callable[[], datetime] = _now,
               inspect: Callable[[dicom_header.InstanceHeader], str | None] | None = None,
               parents: catalog.ParentDocuments | None = None,
               writer: IndexWriter | None = None) -> FileResult:
    """Spool, parse and store one DICOM file; every refusal becomes a result.

    The second door (STOW-RS, :mod:`pacs.dicomweb.stow`) passes ``inspect``, which sees the
    parsed header before anything is stored and may return a reason code that refuses the
    file, and one ``parents`` for all the parts of a request. With a ``writer``, the caller
    commits the result through it (:meth:`IndexWriter.commit`), which writes the instance
    document too; without one, ``on_instance_finalized`` indexes the object."""
    # No series metadata entry for a lone file: its part would cost a Storage write, list
    # and delete where settle's read of the object costs one read (archives write a part
    # per series and batch of 50).
    prepared = _spool(clients, index, name, stream)
    if isinstance(prepared, FileResult):
        return prepared
    reason = inspect(prepared[3]) if inspect is not None else None
    if reason:
        prepared[0].close()
        return FileResult(index, name, results.REJECTED, reason=reason, size=prepared[1])
    keys = ids.instance_keys(clients.settings.hash_key, batch.uid, prepared[3].fields)
    return _store_prepared(clients, batch, index, name, prepared, keys,
                           parents or catalog.ParentDocuments(clients.settings.hash_key), now,
                           writer)


def _checkpoint(clients: Clients, batch: Batch, cursor: int, now: Callable[[], datetime]) -> None:
    """Record progress and continue in a new invocation through Pub/Sub."""
    clients.firestore.collection(UPLOADS).document(batch.upload_id).update(
        {"cursor": cursor, "updated_at": now()})
    topic = clients.publisher.topic_path(clients.settings.project_id, clients.settings.ingest_topic)
    payload = {"uid": batch.uid, "upload_id": batch.upload_id, "generation": batch.generation,
               "cursor": cursor}
    clients.publisher.publish(topic, json.dumps(payload).encode()).result(timeout=60)
    log_events.upload_checkpoint(batch.uid, batch.upload_id, cursor)


def _fail_upload(clients: Clients, batch: Batch, code: str, now: Callable[[], datetime]) -> None:
    """The whole upload is refused (not a ZIP, not DICOM, or the archive is unsafe)."""
    results.record(clients.firestore, clients.settings.hash_key, batch.uid, batch.upload_id,
                   FileResult(0, "", results.REJECTED, reason=code), now())
    log_events.upload_refused(batch.uid, batch.upload_id, code)


def finish(clients: Clients, batch: Batch, now: Callable[[], datetime] = _now) -> str:
    """Compute counts from the results, set the final status, ask for series to settle."""
    counts = results.count_by_status(clients.firestore, batch.upload_id)
    status = results.final_status(counts)
    ref = clients.firestore.collection(UPLOADS).document(batch.upload_id)
    ref.update({"status": status, "counts": counts, "completed_at": now(), "updated_at": now(),
                "counts_toward_quota": status != FAILED})
    from pacs.indexing import settle

    settle.request_settle_for_upload(clients, batch.uid, batch.upload_id)
    log_events.upload_finished(batch.uid, batch.upload_id, status, counts)
    return "done"
