"""STOW-RS (PS3.18 §10.5): ``POST /studies`` and ``POST /studies/{study}``, the second door
into the one ingest.

A request is admitted like an upload (:func:`pacs.ingest.uploads.admit`: the 18+ profile,
quota, hourly rates and the erasure marker, one upload record for the request, as an
archive is one), then each part goes through :func:`pacs.ingest.pipeline.ingest_one`,
exactly as an uploaded file does: magic bytes, bounded header parse, preamble zeroed, keyed
names, sealed header, create-only write; every part gets its result in the upload's
ledger (``uploads/{id}/files/{index}``), and :func:`pacs.ingest.pipeline.finish` counts
them and asks for the series to settle. The indexer then indexes the instances from their
finalize events, as it does uploaded ones.

Bodies are ``multipart/related; type="application/dicom"`` (read streaming,
:mod:`pacs.dicomweb.multipart_reader`) or one ``application/dicom`` instance, at most
:data:`MAX_REQUEST_BYTES` and :data:`MAX_PARTS` parts. The answer is the Store Instances
Response Module as ``application/dicom+json``: ReferencedSOPSequence with a RetrieveURL per
stored instance (a duplicate is stored), FailedSOPSequence with a FailureReason per refused
part; 200 when all were stored, 202 when some, 400 when none could be understood, 409 when
none was stored for another reason (quota, study UID mismatch, another instance under the
same UID, the study being deleted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from pacs import markers, results
from pacs.clients import Clients
from pacs.dicomweb import attributes, qido, restriction
from pacs.dicomweb.multipart_reader import (
    MultipartError,
    MultipartReader,
    TooManyParts,
    parse_media_type,
)
from pacs.dicomweb.negotiation import NotAcceptable
from pacs.errors import BadRequest, Forbidden, PacsError, QuotaExceeded
from pacs.http import BodyTooLarge
from pacs.indexing import catalog
from pacs.ingest import pipeline, uploads
from pacs.results import FileResult
from pacs.zip import safety as zip_safety

MIB = 1024 * 1024
# Below Cloud Functions' 32 MiB request cap, so the refusal is ours and says what to do.
MAX_REQUEST_BYTES = 30 * MIB
# Parts are stored one after another within the 60 s the request has (measured: 100 parts
# in 21 s on the emulators of a 2-CPU machine at load 78; docs/dicomweb.md).
MAX_PARTS = 200
# The request has 60 s (deploy/plan.py; Hosting cuts there too): past this many, the parts
# left are read and named but not stored (A700, ledger reason ``time_budget``).
TIME_BUDGET_SECONDS = 40.0
DICOM = "application/dicom"
SOURCE = "stow-rs"
TOO_LARGE = (f"a STOW-RS request is at most {MAX_REQUEST_BYTES // MIB} MiB and {MAX_PARTS} "
             "parts: send smaller batches, or use uploads (create_upload, `pacs upload`) for "
             "large studies")

# FailureReason (0008,1197) values, PS3.18 §10.5.3 / PS3.4 Annex GG.
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900  # also: the part's StudyInstanceUID is not the one in the URL
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111  # same SOP Instance UID, other content: the first is kept
NOT_AUTHORIZED = 0x0124  # processing of the account or the part's study is restricted
REASONS = {
    "quota_exceeded": OUT_OF_RESOURCES, "rate_limited": OUT_OF_RESOURCES,
    "byte_rate_limited": OUT_OF_RESOURCES, "time_budget": OUT_OF_RESOURCES,
    "study_uid_mismatch": DOES_NOT_MATCH,
    results.CONFLICT: DUPLICATE_SOP_INSTANCE, "study_deleted": PROCESSING_FAILURE,
    "restricted": NOT_AUTHORIZED,
}
TAGS = {"FailureReason": ("00081197", "US"), "FailedSOPSequence": ("00081198", "SQ"),
        "ReferencedSOPSequence": ("00081199", "SQ"),
        "ReferencedSOPClassUID": ("00081150", "UI"),
        "ReferencedSOPInstanceUID": ("00081155", "UI"), "RetrieveURL": ("00081190", "UR")}


class UnsupportedMediaType(PacsError):
    """The request body is of a media type STOW-RS here does not take."""

    code = "unsupported_media_type"
    http_status = 415


@dataclass(frozen=True)
class StowRequest:
    """What the entry point hands over: the body as a stream and the request's facts."""

    content_type: str | None
    content_length: int | None
    stream: IO[bytes]
    study_uid: str | None  # from the URL (``/studies/{study}``), else None
    base_url: str  # the service's base URL, for RetrieveURLs
    accept: str | None = None  # the request's Accept header


@dataclass
class StowAnswer:
    """The Store Instances Response (DICOM JSON) and its HTTP status."""

    status: int
    body: dict[str, Any]
    study: str | None = None  # the first stored part's study
    referenced: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


def _el(name: str, value: Any) -> dict[str, Any]:
    vr = TAGS[name][1]
    if value is None or value == []:
        return {"vr": vr}
    return {"vr": vr, "Value": value if isinstance(value, list) else [value]}


def check_accept(accept: str | None) -> None:
    """406 unless ``Accept`` (absent: anything) allows ``application/dicom+json``: the
    response is sent in that media type only (no XML)."""
    if not accept or not accept.strip():
        return
    for media_range in accept.split(","):
        media, params = parse_media_type(media_range)
        if params.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if media in (attributes.MEDIA_TYPE, "application/json", "application/*", "*/*"):
            return
    raise NotAcceptable("the STOW-RS response is application/dicom+json only")


def _body_kind(request: StowRequest) -> str | None:
    """The multipart boundary, or None for a single ``application/dicom`` body; 415 for
    anything else (``application/dicom+json`` metadata with bulk data is not taken)."""
    media, params = parse_media_type(request.content_type)
    if media == DICOM:
        return None
    if media == "multipart/related" and params.get("type", "").lower() == DICOM:
        if "boundary" not in params:
            raise BadRequest("the multipart body has no boundary parameter",
                             code="bad_multipart")
        return params["boundary"]
    raise UnsupportedMediaType('send multipart/related; type="application/dicom" or one '
                               "application/dicom instance")


def _parts(request: StowRequest) -> tuple[Any, Any]:
    """(iterator of part streams, the reader or None) for the body."""
    boundary = _body_kind(request)
    if boundary is None:
        return iter([_Single(request.stream)]), None
    reader = MultipartReader(request.stream, boundary, max_bytes=MAX_REQUEST_BYTES,
                             max_parts=MAX_PARTS)
    return reader.parts(), reader


class _Single:
    """A single ``application/dicom`` body as the one part (bounded like multipart)."""

    content_type = DICOM

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream, self.bytes_read = stream, 0

    def read(self, n: int = -1) -> bytes:
        out = self._stream.read(n)
        self.bytes_read += len(out)
        if self.bytes_read > MAX_REQUEST_BYTES:
            raise BodyTooLarge(TOO_LARGE)
        return out


class _Prefixed:
    """A part whose first bytes were read to sniff them."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head, self._rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = self._head, b""
            return out
        return self._rest.read(n)


def _head(part: Any) -> bytes:
    head = b""
    while len(head) < 132 and (more := part.read(132 - len(head))):
        head += more
    return head


def _sniffed(index: int, part: Any) -> FileResult | bytes:
    """The part's first bytes, or its refusal: a part must be one DICOM Part-10 instance."""
    media, _ = parse_media_type(getattr(part, "content_type", None) or DICOM)
    if media != DICOM:
        return FileResult(index, _name(index), results.REJECTED, reason="not_dicom")
    head = _head(part)
    kind = zip_safety.sniff(head)
    if kind == "dicom":
        return head
    code = {"polyglot": "polyglot", "zip": "nested_archive"}.get(kind) or (
        "empty" if not head else "not_dicom")
    return FileResult(index, _name(index), results.REJECTED, reason=code)


def _name(index: int) -> str:
    return f"part {index + 1}"


def store(clients: Clients, uid: str, request: StowRequest,
          now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> StowAnswer:
    """Store the request's instances for ``uid`` (see the module docstring).

    Raises
    ------
    UnsupportedMediaType, BadRequest
        415 for another media type; 400 for a malformed body or study UID.
    BodyTooLarge, TooManyParts
        413: over :data:`MAX_REQUEST_BYTES` (declared or read) or :data:`MAX_PARTS`.
    Forbidden
        403 ``profile_required`` or ``erasure_in_progress``.
    """
    check_accept(request.accept)
    if request.study_uid is not None and not qido.is_uid(request.study_uid):
        raise BadRequest("the study in the URL is not a UID", code="bad_value")
    _body_kind(request)
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        raise BodyTooLarge(TOO_LARGE)
    size = request.content_length or MAX_REQUEST_BYTES
    ask = uploads.UploadRequest("STOW-RS request", max(size, 1), DICOM)
    try:
        upload_id, _ = uploads.admit(clients.firestore, clients.settings, uid, [ask], now)[0]
    except QuotaExceeded as err:
        return _refuse_all(clients, uid, request, err.code)
    return _ingest(clients, uid, upload_id, request, now)


def _ingest(clients: Clients, uid: str, upload_id: str, request: StowRequest,
            now: Callable[[], datetime]) -> StowAnswer:
    from google.api_core.exceptions import NotFound as GoneRecord

    record = clients.firestore.collection(uploads.UPLOADS).document(upload_id)
    try:  # an update never creates: a record an erasure deleted meanwhile stays deleted
        record.update({"status": uploads.PROCESSING, "source": SOURCE, "started_at": now(),
                       "updated_at": now()})
    except GoneRecord:
        raise Forbidden("your account is being erased", code="erasure_in_progress") from None
    batch = pipeline.Batch(uid, upload_id, "0")
    recorder = results.Recorder(clients.firestore, clients.settings.hash_key, uid, upload_id,
                                now)
    parents = catalog.ParentDocuments(clients.settings.hash_key)
    restricted = restriction.StudyFlags(clients.firestore, clients.settings.hash_key, uid)
    answer = StowAnswer(200, {})
    parts, reader = _parts(request)
    single = None
    started = time.monotonic()
    try:
        for index, part in enumerate(parts):
            single = part if reader is None else None
            late = time.monotonic() - started > TIME_BUDGET_SECONDS
            result, fields = _one(clients, batch, index, part, request.study_uid, parents, now,
                                  refuse="time_budget" if late else None,
                                  restricted=restricted)
            recorder.add(result)
            _answer_part(answer, request.base_url, result, fields)
            if result.reason == "truncated_part":
                break
    except markers.ErasureBegan:
        raise Forbidden("your account is being erased", code="erasure_in_progress") from None
    except (BodyTooLarge, TooManyParts) as err:
        raise type(err)(TOO_LARGE) from None  # what was stored stays (a retry: duplicates)
    finally:
        read = reader.bytes_read if reader is not None else getattr(single, "bytes_read", 0)
        _finish(clients, batch, record, recorder, read, now)
    if not answer.referenced and not answer.failed:
        raise BadRequest("the request holds no parts", code="no_parts")
    return _complete(answer, request.base_url, request.study_uid)


def _finish(clients: Clients, batch: pipeline.Batch, record: Any, recorder: Any, read: int,
            now: Callable[[], datetime]) -> None:
    """Write the last results, the bytes actually received (what the quota holds), and the
    final status; ask for the series to settle. Runs however the request ended."""
    from google.api_core.exceptions import NotFound as GoneRecord

    try:
        recorder.flush()
        record.update({"size": max(read, 1), "updated_at": now()})
        pipeline.finish(clients, batch, now)
    except (markers.ErasureBegan, GoneRecord):
        return  # the owner's erasure began: it deletes the record and what was stored


def _one(clients: Clients, batch: pipeline.Batch, index: int, part: Any,
         study_uid: str | None, parents: catalog.ParentDocuments | None,
         now: Callable[[], datetime] = lambda: datetime.now(UTC), refuse: str | None = None,
         restricted: Callable[[Any], bool] | None = None
         ) -> tuple[FileResult, dict[str, Any]]:
    """Ingest one part; (its result, the header fields it had, if any were read).
    ``refuse``: a reason that refuses the part once its header is read (nothing stored);
    ``restricted``: whether the part's study takes no new instances (reason ``restricted``)."""
    seen: dict[str, Any] = {}

    def inspect(header: Any) -> str | None:
        seen.update(header.fields)
        if refuse:
            return refuse
        if study_uid is not None and header.fields.get("StudyInstanceUID") != study_uid:
            return "study_uid_mismatch"
        study = header.fields.get("StudyInstanceUID")
        if restricted is not None and qido.is_uid(str(study)) and restricted(study):
            return "restricted"
        return None

    try:
        sniffed = _sniffed(index, part)
        if isinstance(sniffed, FileResult):
            return sniffed, seen
        result = pipeline.ingest_one(clients, batch, index, _name(index),
                                     _Prefixed(sniffed, part), now=now, inspect=inspect,
                                     parents=parents)
    except MultipartError:
        return FileResult(index, _name(index), results.REJECTED, reason="truncated_part"), seen
    return result, seen


def _answer_part(answer: StowAnswer, base: str, result: FileResult,
                 fields: dict[str, Any]) -> None:
    sop_class, sop = fields.get("SOPClassUID"), fields.get("SOPInstanceUID")
    item = {TAGS["ReferencedSOPClassUID"][0]: _el("ReferencedSOPClassUID", sop_class),
            TAGS["ReferencedSOPInstanceUID"][0]: _el("ReferencedSOPInstanceUID", sop)}
    if result.status in (results.STORED, results.DUPLICATE):
        url = (f"{base}/studies/{fields['StudyInstanceUID']}/series/"
               f"{fields['SeriesInstanceUID']}/instances/{sop}")
        item[TAGS["RetrieveURL"][0]] = _el("RetrieveURL", url)
        answer.referenced.append(item)
        answer.study = answer.study or fields["StudyInstanceUID"]
    else:
        code = REASONS.get(result.reason or "", CANNOT_UNDERSTAND)
        item[TAGS["FailureReason"][0]] = _el("FailureReason", code)
        answer.failed.append(item)


def _complete(answer: StowAnswer, base: str, study_uid: str | None) -> StowAnswer:
    """The response dataset and its status (see the module docstring)."""
    study = study_uid or answer.study
    body: dict[str, Any] = {}
    if answer.referenced and study:
        body[TAGS["RetrieveURL"][0]] = _el("RetrieveURL", f"{base}/studies/{study}")
    if answer.failed:
        body[TAGS["FailedSOPSequence"][0]] = _el("FailedSOPSequence", answer.failed)
    if answer.referenced:
        body[TAGS["ReferencedSOPSequence"][0]] = _el("ReferencedSOPSequence", answer.referenced)
    answer.body = body
    if not answer.failed:
        answer.status = 200
    elif answer.referenced:
        answer.status = 202
    else:
        # 400 only when nothing could be understood; any other refusal is a conflict with
        # the state here (quota, another study, another instance, a deletion).
        reasons = {item[TAGS["FailureReason"][0]]["Value"][0] for item in answer.failed}
        answer.status = 400 if reasons == {CANNOT_UNDERSTAND} else 409
    return answer


def _refuse_all(clients: Clients, uid: str, request: StowRequest, code: str) -> StowAnswer:
    """The quota or an hourly rate is reached: nothing is stored and nothing recorded (there
    is no upload record); each part is read and parsed as ingest would (bounded), to name it
    in the FailedSOPSequence with A700."""
    answer = StowAnswer(409, {})
    batch = pipeline.Batch(uid, "", "0")
    parts, _ = _parts(request)
    for index, part in enumerate(parts):
        result, fields = _one(clients, batch, index, part, None, None, refuse=code)
        _answer_part(answer, request.base_url, result, fields)
        if result.reason == "truncated_part":
            break
    if not answer.failed:
        raise QuotaExceeded("storage quota or hourly rate reached", code=code)
    return _complete(answer, request.base_url, request.study_uid)
