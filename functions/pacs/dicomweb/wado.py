"""WADO-RS instance retrieve (PS3.18 §10.4): one stored instance as
``multipart/related; type="application/dicom"``, streamed from Storage.

The framing suits strict parsers (Cornerstone's reads the first part only): the body starts
with the boundary, the part header is spelled ``Content-Type:`` and names the stored
transfer syntax, lines end in CRLF. The instance is sent as stored (no transcoding), so an
``Accept`` is met when it allows ``multipart/related`` with ``type="application/dicom"``
(or ``*/*``) and a ``transfer-syntax`` of ``*``, the stored one, or none; otherwise 406.
The object is read with its generation pinned: the instance the index names, not a later
one under the same name.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pacs import ids
from pacs.clients import Clients
from pacs.dicomweb import qido
from pacs.errors import NotFound, PacsError
from pacs.indexing import catalog

CHUNK_BYTES = 1024 * 1024
DICOM = "application/dicom"


class NotAcceptable(PacsError):
    """Nothing in the request's ``Accept`` can be served."""

    code = "not_acceptable"
    http_status = 406


@dataclass(frozen=True)
class MultipartBody:
    """What the entry point sends: the response ``Content-Type`` and the body's pieces."""

    content_type: str
    chunks: Iterator[bytes]


def _params(parts: list[str]) -> dict[str, str]:
    out = {}
    for part in parts:
        name, _, value = part.partition("=")
        out[name.strip().lower()] = value.strip().strip('"')
    return out


def acceptable(accept: str | None, stored_syntax: str | None) -> bool:
    """Whether ``accept`` (the header; None when absent) allows the instance as stored."""
    if not accept or not accept.strip():
        return True
    for media_range in accept.split(","):
        media, *rest = media_range.split(";")
        media = media.strip().lower()
        params = _params(rest)
        if params.get("q") in ("0", "0.0", "0.00", "0.000"):
            continue
        if media == "*/*":
            return True
        if media not in ("multipart/related", "multipart/*"):
            continue
        if params.get("type", DICOM).lower() not in (DICOM, "*/*"):
            continue
        syntax = params.get("transfer-syntax")
        if syntax in (None, "*") or syntax == stored_syntax:
            return True
    return False


def _not_found() -> NotFound:
    return NotFound("no such instance", code="not_found")


def retrieve_instance(clients: Clients, uid: str, study_uid: str, series_uid: str,
                      sop_uid: str, accept: str | None) -> MultipartBody:
    """One of the caller's instances as a one-part multipart body.

    Raises
    ------
    NotFound
        Unknown study, series or instance, or not the caller's (the same 404).
    NotAcceptable
        ``Accept`` allows nothing we can send.
    """
    fs, settings = clients.firestore, clients.settings
    owned = qido.owned_series(fs, settings.hash_key, uid, study_uid, series_uid)
    if owned is None or not qido.is_uid(sop_uid):
        raise _not_found()
    key = ids.instance_key(settings.hash_key, uid, sop_uid)
    snap = catalog.instance_ref(fs, *owned, key).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid or not doc.get("object"):
        raise _not_found()
    syntax = doc.get("TransferSyntaxUID")
    if not acceptable(accept, syntax):
        raise NotAcceptable('this instance is served as stored: accept multipart/related; '
                            f'type="application/dicom"; transfer-syntax={syntax or "*"}')
    from google.api_core.exceptions import NotFound as GcsNotFound

    chunks = _object_chunks(clients, doc)
    try:  # a missing object is a 404 before any byte is sent
        first = next(chunks)
    except (GcsNotFound, StopIteration):
        raise _not_found() from None
    boundary = secrets.token_hex(16)
    part_type = f"{DICOM}; transfer-syntax={syntax}" if syntax else DICOM

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n").encode()
        yield first
        yield from chunks
        yield f"\r\n--{boundary}--\r\n".encode()

    return MultipartBody(f'multipart/related; type="{DICOM}"; boundary={boundary}', body())


def _object_chunks(clients: Clients, doc: dict[str, Any]) -> Iterator[bytes]:
    """The object's bytes in chunks; an error past the first chunk aborts the response
    (the closing boundary is never sent after a partial instance)."""
    bucket = clients.storage.bucket(clients.settings.instances_bucket)
    generation = int(doc["generation"]) if doc.get("generation") else None
    blob = bucket.blob(doc["object"], generation=generation)
    with blob.open("rb", chunk_size=CHUNK_BYTES) as reader:
        while chunk := reader.read(CHUNK_BYTES):
            yield chunk
