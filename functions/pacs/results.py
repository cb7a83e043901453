"""Per-file results of an upload, and the upload's final status.

Results live in the subcollection ``uploads/{uploadId}/files/{index}`` (one small document
per file), so an archive of 10,000 files stays far from Firestore's 1 MiB document limit,
and a redelivered event rewrites the same documents instead of appending. Counts are
computed from the results, never incremented, so duplicates cannot skew them. Results are
written in a transaction that reads the owner's erasure marker first
(:func:`pacs.markers.guarded_write`), so none lands after an erasure began.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pacs import markers

STORED, DUPLICATE, CONFLICT, REJECTED, SKIPPED = "stored", "duplicate", "conflict", "rejected", "skipped"
ALL_STATUSES = (STORED, DUPLICATE, CONFLICT, REJECTED, SKIPPED)

# Plain-language messages by reason code (shown to users by the CLI and the web client).
MESSAGES = {
    "not_dicom": "This file is not a DICOM Part-10 file (no DICM marker and file meta).",
    "missing_uid": "This DICOM file lacks a Study, Series or SOP Instance UID.",
    "corrupt": "This DICOM file is damaged and could not be read.",
    "truncated_pixel_data": "The image data in this file is shorter than its header says.",
    "too_large": "This file is larger than the allowed size.",
    "deflate_bomb": "This compressed DICOM file expands beyond the allowed size.",
    "encrypted": "This archive member is password-protected; upload it unencrypted.",
    "symlink": "Symbolic links inside archives are not followed.",
    "nested_archive": "Archives inside archives are not opened; upload the inner archive itself.",
    "unsupported_compression": "This archive member uses a compression method we do not support.",
    "polyglot": "This file is both a DICOM file and a ZIP archive; it is refused as unsafe.",
    "unknown_type": "This file is neither a DICOM file nor a ZIP archive.",
    "empty": "This file is empty.",
    "member_too_large": "This archive member is larger than the allowed size or than it declared.",
    "conflict": "An instance with the same SOP Instance UID but different content is already "
                "stored; the first copy is kept.",
    "duplicate": "This instance is already stored with identical content.",
    "directory": "Folder entry (nothing to store).",
    "dicomdir": "DICOMDIR index file (not needed: studies are indexed from the images).",
    "too_many_members": "The archive has more files than allowed.",
    "archive_too_large": "The archive expands to more than the allowed size.",
    "compression_ratio": "The archive compresses implausibly well and is refused as a zip bomb.",
    "overlapping_entries": "The archive's entries overlap and it is refused as a zip bomb.",
    "not_a_zip": "The archive could not be read as a ZIP file.",
    "corrupt_archive": "The archive is damaged and could not be read.",
    "size_mismatch": "The uploaded size differs from the size announced when the upload started.",
    "gave_up": "Processing did not finish within the allowed time.",
    "corrupt_member": "This archive member is damaged (its data does not match its checksum).",
    "unreadable_member": "This archive member could not be read.",
    "study_deleted": "You deleted this study while the upload was being processed; it was not "
                     "stored again.",
    # STOW-RS (DICOMweb) parts.
    "study_uid_mismatch": "This instance belongs to another study than the one the request "
                          "was sent to; it was not stored.",
    "truncated_part": "The request ended in the middle of this instance; send it again.",
    "time_budget": "The request ran out of time before this instance could be stored; send it "
                   "again (in a smaller batch).",
    "restricted": "Processing of this study or of your account is restricted; nothing is added "
                  "to it until the restriction is lifted.",
}


def message_for(code: str) -> str:
    return MESSAGES.get(code, "This file could not be processed.")


@dataclass(frozen=True)
class FileResult:
    """One file's outcome. ``name`` is the member or file name, kept as metadata only."""

    index: int
    name: str
    status: str
    reason: str | None = None
    size: int | None = None
    study_key: str | None = None
    series_key: str | None = None
    instance_key: str | None = None
    sha256: str | None = None

    def document(self, owner: str, upload_id: str, now: datetime) -> dict[str, Any]:
        doc = {k: v for k, v in asdict(self).items() if v is not None}
        doc.update(owner=owner, upload_id=upload_id, recorded_at=now,
                   message=message_for(self.reason) if self.reason else None)
        return doc


def result_ref(firestore: Any, upload_id: str, index: int) -> Any:
    return (firestore.collection("uploads").document(upload_id)
            .collection("files").document(f"{index:06d}"))


def write_results(firestore: Any, key: bytes, owner: str, upload_id: str,
                  batch: list[FileResult], now: datetime) -> None:
    """Write (or rewrite, on redelivery) results in one transaction, unless the owner's
    erasure began (:class:`pacs.markers.ErasureBegan`)."""

    def write(transaction: Any) -> None:
        for result in batch:
            transaction.set(result_ref(firestore, upload_id, result.index),
                            result.document(owner, upload_id, now))

    markers.guarded_write(firestore, key, owner, write)


def record(firestore: Any, key: bytes, owner: str, upload_id: str, result: FileResult,
           now: datetime) -> None:
    """Write (or rewrite, on redelivery) one file's result (see :func:`write_results`)."""
    write_results(firestore, key, owner, upload_id, [result], now)


class Recorder:
    """Writes an archive's results in batches: one commit per ``batch_size`` results (or
    per ``max_delay`` seconds) instead of one round trip each. A live listener sees them at
    most ``max_delay`` late; :meth:`flush` runs before any checkpoint or final count, so the
    idempotency argument (fixed ids, rewrite on redelivery) is unchanged. Thread-safe.
    ``commit(results, now)`` writes one batch (default: :func:`write_results`, which raises
    :class:`pacs.markers.ErasureBegan` once the owner's erasure began)."""

    def __init__(self, firestore: Any, key: bytes, owner: str, upload_id: str,
                 now: Callable[[], datetime], batch_size: int = 50, max_delay: float = 0.3,
                 clock: Callable[[], float] = time.monotonic,
                 commit: Callable[[list[FileResult], datetime], None] | None = None) -> None:
        self._now = now
        self._commit = commit or (lambda batch, at: write_results(firestore, key, owner,
                                                                  upload_id, batch, at))
        self._batch_size, self._max_delay, self._clock = batch_size, max_delay, clock
        self._buffer: list[FileResult] = []
        self._oldest = 0.0
        self._lock = threading.Lock()

    def add(self, result: FileResult) -> None:
        with self._lock:
            if not self._buffer:
                self._oldest = self._clock()
            self._buffer.append(result)
            due = (len(self._buffer) >= self._batch_size
                   or self._clock() - self._oldest >= self._max_delay)
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._buffer = self._buffer, []
        if not pending:
            return
        self._commit(pending, self._now())


def count_by_status(firestore: Any, upload_id: str) -> dict[str, int]:
    """Counts per status, by aggregation queries over the results subcollection."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    files = firestore.collection("uploads").document(upload_id).collection("files")
    counts = {}
    for status in ALL_STATUSES:
        agg = files.where(filter=FieldFilter("status", "==", status)).count(alias="n").get()
        counts[status] = int(agg[0][0].value)
    counts["total"] = sum(counts.values())
    return counts


def final_status(counts: dict[str, int]) -> str:
    """``complete`` when every file was kept (or skipped), ``failed`` when none was,
    ``partial`` otherwise."""
    kept = counts.get(STORED, 0) + counts.get(DUPLICATE, 0)
    refused = counts.get(REJECTED, 0) + counts.get(CONFLICT, 0)
    if refused == 0 and kept > 0:
        return "complete"
    if kept == 0:
        return "failed"
    return "partial"
