"""Starting an upload: the only way bytes enter the system.

The caller gets a resumable upload session for exactly one object ``{uid}/{uploadId}`` of
the uploads bucket, with the declared size and content type; the upload record is created
first, so ``on_upload_finalized`` can refuse any object that has none.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs import ids
from pacs.errors import BadRequest, QuotaExceeded
from pacs.privacy import profile
from pacs.settings import Settings

ALLOWED_CONTENT_TYPES = ("application/dicom", "application/zip", "application/octet-stream")
UPLOADS = "uploads"
# Statuses an upload moves through.
PENDING, PROCESSING, COMPLETE, PARTIAL, FAILED = "pending", "processing", "complete", "partial", "failed"
FINAL_STATUSES = (COMPLETE, PARTIAL, FAILED)


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
        filename, size, content_type = body.get("filename"), body.get("size"), body.get("content_type")
        if not isinstance(filename, str) or not filename.strip() or len(filename) > 1024:
            raise BadRequest("filename must be a non-empty string of at most 1024 characters",
                             code="bad_filename")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise BadRequest("size must be a positive whole number of bytes", code="bad_size")
        if content_type not in ALLOWED_CONTENT_TYPES:
            raise BadRequest("content_type must be one of " + ", ".join(ALLOWED_CONTENT_TYPES),
                             code="bad_content_type")
        return cls(filename.strip(), size, content_type)


def _usage(firestore: Any, uid: str, since: datetime) -> tuple[int, int]:
    """(bytes held in non-failed uploads, uploads started since ``since``) by aggregation
    queries, so no per-user counter document takes a write per upload."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    uploads = firestore.collection(UPLOADS).where(filter=FieldFilter("owner", "==", uid))
    held = uploads.where(filter=FieldFilter("counts_toward_quota", "==", True))
    total = held.sum("size", alias="bytes").get()
    recent = uploads.where(filter=FieldFilter("created_at", ">=", since)).count(alias="n").get()
    return int(total[0][0].value or 0), int(recent[0][0].value or 0)


def start_upload(firestore: Any, storage: Any, settings: Settings, uid: str,
                 request: UploadRequest, origin: str | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> dict[str, Any]:
    """Check the caller's profile (the 18+ attestation) and limits, record the upload as
    ``pending`` and open its upload session.

    Returns
    -------
    dict
        ``upload_id``, ``session_url`` (a GCS resumable session), ``bucket``, ``object``.
    """
    # The service is for adults only: nothing is collected before the 18+ attestation.
    profile.require(firestore, uid)
    if request.size > settings.max_upload_bytes:
        raise BadRequest(f"file is larger than the {settings.max_upload_bytes} byte limit",
                         code="too_large")
    current = now()
    held, recent = _usage(firestore, uid, current - timedelta(hours=1))
    if held + request.size > settings.user_quota_bytes:
        raise QuotaExceeded("storage quota reached: delete studies or ask for more space",
                            code="quota_exceeded")
    if recent >= settings.uploads_per_hour:
        raise QuotaExceeded("too many uploads in the last hour: try again later",
                            code="rate_limited")
    upload_id = uuid.uuid4().hex
    object_name = ids.upload_object(uid, upload_id)
    firestore.collection(UPLOADS).document(upload_id).create({
        "owner": uid, "filename": request.filename, "size": request.size,
        "content_type": request.content_type, "status": PENDING, "created_at": current,
        "updated_at": current, "object": object_name, "counts_toward_quota": True,
    })
    blob = storage.bucket(settings.uploads_bucket).blob(object_name)
    session_url = blob.create_resumable_upload_session(
        content_type=request.content_type, size=request.size, origin=origin,
        if_generation_match=0)
    return {"upload_id": upload_id, "session_url": session_url,
            "bucket": settings.uploads_bucket, "object": object_name}
