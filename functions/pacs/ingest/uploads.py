"""Starting uploads: the only way bytes enter the system.

The caller gets one resumable upload session per file, for exactly one object
``{uid}/{uploadId}`` of the uploads bucket, with the declared size and content type; the
upload records are created first, so ``on_upload_finalized`` can refuse any object that
has none. A folder is started in batches: one request reserves up to
``upload_batch_max`` files and answers with a session for each.

Limits, per user: the storage quota (bytes of the uploads that still count toward it, the
``counts_toward_quota`` records), and what was started in the last hour, in bytes and in
files. The check and the reservation are one step, so parallel requests cannot all pass
a check that only some of them fit (:func:`reserve`):

1. read the user's ``upload_usage`` document (only this module writes it, once per
   request; ingest never touches it);
2. count the usage by aggregation queries over the upload records, and check the limits;
3. in one transaction: read the erasure marker (an erasure that began stops the start,
   and its marker write is serialised with this transaction), update the usage document
   on the condition that it is still the version read in 1, and create the records.

Every reservation changes the usage document, so a commit succeeds only when no other
reservation committed between 1 and 3; the counts of 2, taken after 1, then include every
earlier reservation. A reservation that lost the race reads and counts again. The quota
is still computed from the records, so what releases it stays as it was: a failed upload,
a deleted study and the retention job clear ``counts_toward_quota``, an erasure deletes
the records.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs import ids, markers
from pacs.errors import BadRequest, Forbidden, QuotaExceeded, TransientError
from pacs.links import deidentified
from pacs.privacy import profile
from pacs.settings import Settings

ALLOWED_CONTENT_TYPES = ("application/dicom", "application/zip", "application/octet-stream")
UPLOADS = "uploads"
# One document per user, {owner, updated_at, batch}: the point where one user's
# reservations are serialised (see the module docstring).
USAGE = "upload_usage"
# Statuses an upload moves through.
PENDING, PROCESSING, COMPLETE = "pending", "processing", "complete"
PARTIAL, FAILED = "partial", "failed"
FINAL_STATUSES = (COMPLETE, PARTIAL, FAILED)
# The largest request body create_upload reads (413 past it): upload_batch_max (at most
# 400) entries with a name of up to 1,024 characters.
MAX_BODY_BYTES = 2 * 1024 * 1024
# Reservations that lost the race to another one of the same user are tried again, after
# a short random pause; past this many the request answers 503 ``busy``.
RESERVE_ATTEMPTS = 40
SESSION_WORKERS = 16


@dataclass(frozen=True)
class UploadRequest:
    filename: str
    size: int
    content_type: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any] | None) -> UploadRequest:
        """Validate the request body's shape (limits are checked by :func:`start_upload`)."""
        if not isinstance(body, Mapping):
            raise BadRequest("send a JSON object with filename, size and content_type")
        filename, size = body.get("filename"), body.get("size")
        content_type = body.get("content_type")
        if not isinstance(filename, str) or not filename.strip() or len(filename) > 1024:
            raise BadRequest("filename must be a non-empty string of at most 1024 characters",
                             code="bad_filename")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise BadRequest("size must be a positive whole number of bytes", code="bad_size")
        if content_type not in ALLOWED_CONTENT_TYPES:
            raise BadRequest("content_type must be one of " + ", ".join(ALLOWED_CONTENT_TYPES),
                             code="bad_content_type")
        return cls(filename.strip(), size, content_type)


def batch_from_json(body: Mapping[str, Any] | None, max_files: int) -> list[UploadRequest]:
    """``{"files": [{filename, size, content_type}, ...]}``: 1 to ``max_files`` files."""
    files = body.get("files") if isinstance(body, Mapping) else None
    if not isinstance(files, list):
        raise BadRequest("send a JSON object with a list of files", code="bad_request")
    if not files:
        raise BadRequest("the list of files is empty", code="no_files")
    if len(files) > max_files:
        raise BadRequest(f"at most {max_files} files per request: send the rest in another",
                         code="too_many_files")
    return [UploadRequest.from_json(entry) for entry in files]


def is_batch(body: Any) -> bool:
    """The batch form (``files``) rather than one file."""
    return isinstance(body, Mapping) and "files" in body


@dataclass(frozen=True)
class Usage:
    """Bytes held toward the quota; bytes and files started since the hour began."""

    held_bytes: int
    hour_bytes: int
    hour_files: int


def _value(result: Any, alias: str) -> int:
    for item in result[0]:
        if item.alias == alias:
            return int(item.value or 0)
    return 0


def queries(firestore: Any, uid: str, since: datetime) -> tuple[Any, Any]:
    """The uploads holding quota, and those started since ``since`` (whose ``size`` is
    summed: the indexes of ``firestore.indexes.json`` end with it)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    uploads = firestore.collection(UPLOADS).where(filter=FieldFilter("owner", "==", uid))
    return (uploads.where(filter=FieldFilter("counts_toward_quota", "==", True)),
            uploads.where(filter=FieldFilter("created_at", ">=", since)))


def usage(firestore: Any, uid: str, since: datetime) -> Usage:
    """The user's usage by aggregation queries over the upload records, plus the
    de-identified copies of their shares (``pacs.links.deidentified``)."""
    held, recent = queries(firestore, uid, since)
    held_result = held.sum("size", alias="bytes").get()
    recent_result = recent.sum("size", alias="bytes").count(alias="files").get()
    copies = deidentified.copy_bytes(firestore, uid)
    return Usage(_value(held_result, "bytes") + copies, _value(recent_result, "bytes"),
                 _value(recent_result, "files"))


def check_limits(settings: Settings, used: Usage, requests: Sequence[UploadRequest]) -> None:
    """Raise 429 with the reason when the requested files do not all fit."""
    size = sum(r.size for r in requests)
    if used.held_bytes + size > settings.user_quota_bytes:
        raise QuotaExceeded("storage quota reached: delete studies or ask for more space",
                            code="quota_exceeded")
    if used.hour_files + len(requests) > settings.uploads_per_hour:
        raise QuotaExceeded(f"more than {settings.uploads_per_hour} files started in the last "
                            "hour: try again later", code="rate_limited")
    if used.hour_bytes + size > settings.upload_bytes_per_hour:
        raise QuotaExceeded(f"more than {_amount(settings.upload_bytes_per_hour)} started in "
                            "the last hour: try again later", code="byte_rate_limited")


def _amount(size: int) -> str:
    """Bytes for people: ``20 GiB``, ``5 MiB``, ``1.5 KiB``, ``300 bytes``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


class _LostRace(Exception):
    """Another reservation of the same user committed first: read and count again."""


def _commit(firestore: Any, settings: Settings, uid: str, usage_snap: Any,
            records: Sequence[tuple[str, dict[str, Any]]], batch: str, current: datetime) -> None:
    """The transaction of step 3: the erasure marker, the usage document (still the version
    read), the records."""
    from google.api_core import exceptions
    from google.cloud import firestore as gfs

    marker = markers.erasure_marker_ref(firestore, settings.hash_key, uid)
    usage_ref = usage_snap.reference
    state = {"owner": uid, "updated_at": current, "batch": batch}

    @gfs.transactional
    def run(transaction: Any) -> None:
        if marker.get(transaction=transaction).exists:
            raise markers.ErasureBegan(uid)
        if usage_snap.exists:
            transaction.update(usage_ref, state, option=firestore.write_option(
                last_update_time=usage_snap.update_time))
        else:
            transaction.create(usage_ref, state)
        for upload_id, record in records:
            transaction.create(firestore.collection(UPLOADS).document(upload_id), record)

    try:
        run(firestore.transaction(max_attempts=1))
    except (exceptions.FailedPrecondition, exceptions.Conflict, exceptions.Aborted,
            exceptions.NotFound) as err:  # NotFound: the usage document was deleted since
        raise _LostRace() from err
    except ValueError as err:  # the client's "failed to commit in 1 attempt", from Aborted
        if isinstance(err.__cause__, exceptions.Aborted):
            raise _LostRace() from err
        raise


def reserve(firestore: Any, settings: Settings, uid: str, requests: Sequence[UploadRequest],
            now: Callable[[], datetime], pause: Callable[[float], None] = time.sleep
            ) -> list[tuple[str, dict[str, Any]]]:
    """Check the limits and create ``pending`` records for all of ``requests`` or none.

    Returns ``(upload_id, record)`` per request, in order. Raises 429 (the reason in the
    code), 403 ``erasure_in_progress`` once the user's erasure began, 503 ``busy`` when
    other reservations of the user kept winning."""
    usage_ref = firestore.collection(USAGE).document(uid)
    batch = uuid.uuid4().hex
    for attempt in range(1, RESERVE_ATTEMPTS + 1):
        snap = usage_ref.get()
        current = now()
        check_limits(settings, usage(firestore, uid, current - timedelta(hours=1)), requests)
        records = []
        for request in requests:
            upload_id = uuid.uuid4().hex
            records.append((upload_id, {
                "owner": uid, "filename": request.filename, "size": request.size,
                "content_type": request.content_type, "status": PENDING,
                "created_at": current, "updated_at": current,
                "object": ids.upload_object(uid, upload_id), "counts_toward_quota": True,
                "batch": batch}))
        try:
            _commit(firestore, settings, uid, snap, records, batch, current)
        except markers.ErasureBegan:
            raise Forbidden("your account is being erased", code="erasure_in_progress") from None
        except _LostRace:
            pause(random.uniform(0, 0.02 * min(attempt, 10)))
            continue
        return records
    raise TransientError("too many uploads are being started at once: try again",
                         code="busy")


def _open_sessions(storage: Any, settings: Settings, records: Sequence[tuple[str, dict]],
                   origin: str | None) -> list[str]:
    bucket = storage.bucket(settings.uploads_bucket)

    def one(record: dict[str, Any]) -> str:
        return bucket.blob(record["object"]).create_resumable_upload_session(
            content_type=record["content_type"], size=record["size"], origin=origin,
            if_generation_match=0)

    if len(records) == 1:
        return [one(records[0][1])]
    with ThreadPoolExecutor(max_workers=min(SESSION_WORKERS, len(records))) as pool:
        return list(pool.map(one, [record for _, record in records]))


def _release(firestore: Any, records: Sequence[tuple[str, dict]]) -> None:
    """Delete records whose sessions were never handed out (no object can arrive)."""
    batch = firestore.batch()
    for upload_id, _ in records:
        batch.delete(firestore.collection(UPLOADS).document(upload_id))
    batch.commit()


def admit(firestore: Any, settings: Settings, uid: str, requests: Sequence[UploadRequest],
          now: Callable[[], datetime] = lambda: datetime.now(UTC)
          ) -> list[tuple[str, dict[str, Any]]]:
    """What every way in checks before it takes bytes (``create_upload`` and STOW-RS): the
    18+ profile (403 ``profile_required``), the size cap, then :func:`reserve` (quota, rates,
    the erasure marker). Returns the ``pending`` records (``(upload_id, record)``)."""
    from google.api_core import exceptions

    try:
        # The service is for adults only: nothing is collected before the 18+ attestation.
        profile.require(firestore, uid)
        for request in requests:
            if request.size > settings.max_upload_bytes:
                raise BadRequest(f"file is larger than the {settings.max_upload_bytes} byte "
                                 "limit", code="too_large")
        return reserve(firestore, settings, uid, requests, now)
    except (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded,
            exceptions.InternalServerError, exceptions.RetryError) as err:
        raise TransientError("the database did not answer in time: try again",
                             code="unavailable") from err


def start_uploads(firestore: Any, storage: Any, settings: Settings, uid: str,
                  requests: Sequence[UploadRequest], origin: str | None = None,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)
                  ) -> list[dict[str, Any]]:
    """Check the caller's profile (the 18+ attestation) and limits, record every upload as
    ``pending`` and open its upload session; all of ``requests`` or none.

    Returns
    -------
    list of dict
        Per request, in order: ``upload_id``, ``session_url`` (a GCS resumable session),
        ``bucket``, ``object``, ``batch`` (the id every record of the request carries: a
        client follows them with one query).
    """
    records = admit(firestore, settings, uid, requests, now)
    try:
        sessions = _open_sessions(storage, settings, records, origin)
    except Exception as err:  # noqa: BLE001 - the records go; the caller may try again
        try:
            _release(firestore, records)
        except Exception:  # noqa: BLE001, S110 - pending records expire (retention) anyway
            pass
        raise TransientError("could not open the upload sessions: try again",
                             code="session_failed") from err
    return [{"upload_id": upload_id, "session_url": session_url,
             "bucket": settings.uploads_bucket, "object": record["object"],
             "batch": record["batch"]}
            for (upload_id, record), session_url in zip(records, sessions, strict=True)]


def start_upload(firestore: Any, storage: Any, settings: Settings, uid: str,
                 request: UploadRequest, origin: str | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> dict[str, Any]:
    """One file: :func:`start_uploads` of one request."""
    return start_uploads(firestore, storage, settings, uid, [request], origin, now)[0]
