"""WADO-RS retrieve (PS3.18 §10.4): a study, a series or an instance of the caller's as
``multipart/related; type="application/dicom"`` (one part per instance), or a study or series
as one ZIP (``Accept: application/zip``), streamed from Storage.

Instances are sent as stored (no transcoding): the original bytes with the preamble zeroed.
So a retrieve is acceptable when the ``Accept`` allows every stored transfer syntax among the
instances (``transfer-syntax=*``, the syntax by name, or none: a range that names no syntax
takes the stored one, see :mod:`pacs.dicomweb.negotiation`); otherwise 406 naming the
syntaxes. The parts are framed by :mod:`pacs.dicomweb.multipart` (strict parsers read them);
each part's ``Content-Type`` names its transfer syntax. Objects are read with their
generation pinned (the instance the index names, not a later one under the same name), 1 MiB
at a time: the response holds one chunk, never a whole study. The listing of the instance
documents (a few hundred bytes per instance) is read first, so that negotiation, the 404 and
the ZIP's sizes are settled before the first byte. A failure after the first byte aborts the
response (the multipart close or the ZIP's directory is never sent after a partial instance).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pacs import ids
from pacs.clients import Clients
from pacs.dicomweb import multipart, qido
from pacs.dicomweb.negotiation import MULTIPART, NotAcceptable, Offer, parse_accept, quality
from pacs.errors import NotFound
from pacs.indexing import catalog
from pacs.zip import writer

CHUNK_BYTES = 1024 * 1024
DICOM = "application/dicom"
ZIP = "application/zip"
# What a retrieve reads of each instance document.
LISTED = ("SOPInstanceUID", "InstanceNumber", "TransferSyntaxUID", "object", "generation",
          "size", "owner")

__all__ = ["NotAcceptable", "Retrieved", "retrieve", "retrieve_instance"]


@dataclass(frozen=True)
class Retrieved:
    """What the entry point sends: the response's headers and the body's pieces."""

    content_type: str
    chunks: Iterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Listed:
    series_uid: str
    doc: dict[str, Any]


def _not_found(what: str = "instance") -> NotFound:
    return NotFound(f"no such {what}", code="not_found")


def _by_number(docs: list[dict[str, Any]], number: str, uid: str) -> list[dict[str, Any]]:
    """``docs`` by their (Series|Instance)Number, those without one last, then by UID."""
    def order(doc: dict[str, Any]) -> tuple:
        try:
            value = float(doc.get(number))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = None
        return (value is None, value or 0.0, str(doc.get(uid) or ""))
    return sorted(docs, key=order)


def _instances_of(fs: Any, uid: str, study_key: str, series_key: str,
                  only: str | None = None) -> list[dict[str, Any]]:
    ref = catalog.series_ref(fs, study_key, series_key).collection("instances")
    if only is not None:
        snap = ref.document(only).get()
        docs = [snap.to_dict() or {}] if snap.exists else []
    else:
        docs = [s.to_dict() or {} for s in ref.select(list(LISTED)).stream()]
    return _by_number([d for d in docs if d.get("owner") == uid and d.get("object")],
                      "InstanceNumber", "SOPInstanceUID")


def list_instances(clients: Clients, uid: str, study_uid: str, series_uid: str | None = None,
                   sop_uid: str | None = None) -> tuple[str, list[_Listed]]:
    """(study key, the instances to send in order: series by number, then instances by
    number). Raises NotFound for unknown, malformed or other users' UIDs alike, and for a
    study or series with no stored instance; Forbidden (403 ``restricted``) while processing
    of the account or the study is restricted, as the viewer and share links are."""
    fs, key = clients.firestore, clients.settings.hash_key
    what = "instance" if sop_uid else "series" if series_uid else "study"
    owned = qido.open_study(fs, key, uid, study_uid)  # 403 restricted, as the viewer
    if owned is None:
        raise _not_found(what)
    study_key = owned[0]
    if series_uid is None:
        series = [s.to_dict() or {} for s in catalog.study_ref(fs, study_key).collection(
            "series").select(["owner", "SeriesInstanceUID", "SeriesNumber"]).stream()]
        series = [s for s in _by_number(series, "SeriesNumber", "SeriesInstanceUID")
                  if s.get("owner") == uid and qido.is_uid(str(s.get("SeriesInstanceUID")))]
        wanted = [(s["SeriesInstanceUID"], ids.series_key(key, uid, s["SeriesInstanceUID"]))
                  for s in series]
    else:
        pair = qido.owned_series(fs, key, uid, study_uid, series_uid)
        if pair is None:
            raise _not_found(what)
        wanted = [(series_uid, pair[1])]
    only = None
    if sop_uid is not None:
        if not qido.is_uid(sop_uid):
            raise _not_found(what)
        only = ids.instance_key(key, uid, sop_uid)
    listed = [_Listed(s_uid, doc) for s_uid, s_key in wanted
              for doc in _instances_of(fs, uid, study_key, s_key, only)]
    if not listed:
        raise _not_found(what)
    return study_key, listed


def choose_form(accept: str | None, syntaxes: set[str | None], zip_offered: bool) -> str:
    """``multipart/related`` or ``application/zip``: what ``accept`` prefers for instances
    stored in ``syntaxes``. Multipart needs every syntax acceptable; ties go to multipart.

    Raises NotAcceptable (406) naming the forms and syntaxes on offer.
    """
    ranges = parse_accept(accept)
    offers = [Offer(MULTIPART, DICOM, s or None, default=True) for s in sorted(
        syntaxes, key=str)]
    q_multipart = min(quality(ranges, o, DICOM) for o in offers)
    q_zip = quality(ranges, Offer(ZIP)) if zip_offered else 0.0
    if q_multipart == 0 and q_zip == 0:
        named = ", ".join(o.describe() for o in offers) + (f", {ZIP}" if zip_offered else "")
        raise NotAcceptable("instances are served as stored (no transcoding); this resource "
                            f"offers: {named}")
    return MULTIPART if q_multipart >= q_zip else ZIP


def object_chunks(clients: Clients, doc: dict[str, Any]) -> Iterator[bytes]:
    """An instance object's bytes in 1 MiB chunks, its generation pinned."""
    # ``bucket``: a de-identified share's copy lives in the derived bucket (copy_view).
    bucket = clients.storage.bucket(doc.get("bucket") or clients.settings.instances_bucket)
    generation = int(doc["generation"]) if doc.get("generation") else None
    blob = bucket.blob(doc["object"], generation=generation)
    with blob.open("rb", chunk_size=CHUNK_BYTES) as reader:
        while chunk := reader.read(CHUNK_BYTES):
            yield chunk


def _first_chunk_or_404(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """``chunks`` with its first chunk read now: an object gone before any byte is a 404."""
    from google.api_core.exceptions import NotFound as GcsNotFound

    try:
        first = next(chunks)
    except (GcsNotFound, StopIteration):
        raise _not_found(what) from None

    def again() -> Iterator[bytes]:
        yield first
        yield from chunks
    return again()


def _multipart(clients: Clients, listed: list[_Listed], what: str) -> Retrieved:
    def parts() -> Iterator[multipart.Part]:
        for i, item in enumerate(listed):
            syntax = item.doc.get("TransferSyntaxUID")
            chunks = first if i == 0 else object_chunks(clients, item.doc)
            yield multipart.Part(f"{DICOM}; transfer-syntax={syntax}" if syntax else DICOM,
                                 chunks)

    first = _first_chunk_or_404(object_chunks(clients, listed[0].doc), what)
    out = multipart.MultipartWriter(DICOM)
    return Retrieved(out.content_type, out.stream(parts()))


def _zip(clients: Clients, study_key: str, listed: list[_Listed], what: str) -> Retrieved:
    first = _first_chunk_or_404(object_chunks(clients, listed[0].doc), what)

    def members() -> Iterator[writer.Member]:
        for i, item in enumerate(listed):
            chunks = first if i == 0 else object_chunks(clients, item.doc)
            name = f"{item.series_uid}/{item.doc['SOPInstanceUID']}.dcm"
            yield writer.Member(name, int(item.doc.get("size") or 0), chunks)

    filename = f"study-{study_key[:12]}.zip"
    return Retrieved(ZIP, writer.stream_zip(members(), datetime.now(UTC)),
                     {"Content-Disposition": f'attachment; filename="{filename}"'})


def retrieve(clients: Clients, uid: str, study_uid: str, series_uid: str | None,
             sop_uid: str | None, accept: str | None,
             listing: tuple[str, list[tuple[str, dict[str, Any]]]] | None = None) -> Retrieved:
    """A study, series or instance of the caller's, as ``accept`` prefers.

    ``listing`` (a name for the ZIP, and ``(series UID, instance document)`` in order)
    replaces :func:`list_instances`: the documents that back this request for another
    credential (a de-identified share's copy, :mod:`pacs.dicomweb.copy_view`).

    Raises
    ------
    NotFound
        Unknown study, series or instance, or not the caller's (the same 404).
    BadRequest
        ``bad_accept``: a malformed ``Accept``.
    NotAcceptable
        ``Accept`` allows nothing we can send.
    """
    if listing is None:
        study_key, listed = list_instances(clients, uid, study_uid, series_uid, sop_uid)
    else:
        study_key, listed = listing[0], [_Listed(s, d) for s, d in listing[1]]
    what = "instance" if sop_uid else "series" if series_uid else "study"
    syntaxes = {item.doc.get("TransferSyntaxUID") for item in listed}
    form = choose_form(accept, syntaxes, zip_offered=sop_uid is None)
    if form == ZIP:
        return _zip(clients, study_key, listed, what)
    return _multipart(clients, listed, what)


def retrieve_instance(clients: Clients, uid: str, study_uid: str, series_uid: str,
                      sop_uid: str, accept: str | None) -> Retrieved:
    """One of the caller's instances as a one-part multipart body (see :func:`retrieve`)."""
    return retrieve(clients, uid, study_uid, series_uid, sop_uid, accept)
