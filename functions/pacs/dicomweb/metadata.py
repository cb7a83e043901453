"""WADO-RS metadata (PS3.18 §10.4.1.1.2): the study's, a series' or an instance's headers as
``application/dicom+json``, from the series' precomputed metadata objects
(:mod:`pacs.indexing.series_metadata`): a series is one object read, a study one per
series, whatever the number of instances.

Each answer carries an ``ETag`` derived from the builds it was made from and the base URL
in its BulkDataURIs; ``If-None-Match`` with that tag answers 304 without reading any object.
A series settled before this feature has no build until the backfill job
(:mod:`pacs.retention.series_metadata`) made one: its metadata answers 503
``metadata_pending`` meanwhile. Instances indexed since the last build appear once the
series settles again (the settle delay).
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pacs import ids
from pacs.clients import Clients
from pacs.dicomweb import qido
from pacs.dicomweb.negotiation import Offer, choose
from pacs.errors import NotFound, PacsError
from pacs.indexing import catalog, series_metadata

DICOM_JSON = "application/dicom+json"
OFFERS = (Offer(DICOM_JSON), Offer("application/json"))


class MetadataPending(PacsError):
    """The series has no metadata build yet (settle or backfill pending)."""

    code = "metadata_pending"
    http_status = 503


@dataclass(frozen=True)
class Reply:
    """An answer for the entry point: status, headers and body pieces."""

    status: int
    headers: dict[str, str]
    chunks: Iterable[bytes] = field(default_factory=list)


def _not_found() -> NotFound:
    return NotFound("no such study, series or instance", code="not_found")


def _pointers(clients: Clients, uid: str, study_uid: str,
              series_uid: str | None) -> list[dict[str, Any]]:
    """The metadata pointers of the caller's series (one, or every series of the study)."""
    fs, key = clients.firestore, clients.settings.hash_key
    if series_uid is not None:
        owned = qido.owned_series(fs, key, uid, study_uid, series_uid, opening=True)
        if owned is None:
            raise _not_found()
        snap = catalog.series_ref(fs, *owned).get(field_paths=["metadata"])
        docs = [(snap.to_dict() or {}) if snap.exists else {}]
    else:
        opened = qido.open_study(fs, key, uid, study_uid)
        if opened is None:
            raise _not_found()
        study = opened[0]
        docs = [s.to_dict() or {} for s in catalog.study_ref(fs, study).collection(
            "series").select(["owner", "metadata", "SeriesNumber"]).stream()
            if (s.to_dict() or {}).get("owner") == uid]
        docs.sort(key=lambda d: (d.get("SeriesNumber") is None, d.get("SeriesNumber") or 0))
    pointers = [d.get("metadata") for d in docs]
    if any(not p or not p.get("object") for p in pointers):
        raise MetadataPending("this series' metadata is being prepared; try again in a minute")
    return pointers


def _etag(pointers: list[dict[str, Any]], base: str, extra: str) -> str:
    parts = [f"{p['object']}#{p.get('generation')}" for p in pointers] + [base, extra]
    return '"' + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _read(clients: Clients, pointer: dict[str, Any]) -> bytes:
    from google.api_core.exceptions import NotFound as GcsNotFound

    generation = int(pointer["generation"]) if pointer.get("generation") else None
    blob = clients.storage.bucket(clients.settings.derived_bucket).blob(
        pointer["object"], generation=generation)
    try:
        return gzip.decompress(blob.download_as_bytes())
    except GcsNotFound:  # replaced by a newer build between the pointer read and this one
        raise MetadataPending("this series' metadata was just rebuilt; try again") from None


def _instance_missing(clients: Clients, uid: str, study_uid: str, series_uid: str,
                      sop_uid: str) -> PacsError:
    """404 for an instance that is not the caller's; 503 ``metadata_pending`` for one
    indexed since the series' last build (it appears once the series settles)."""
    fs, key = clients.firestore, clients.settings.hash_key
    owned = qido.owned_series(fs, key, uid, study_uid, series_uid)
    if owned is None or not qido.is_uid(sop_uid):
        return _not_found()
    snap = catalog.instance_ref(fs, *owned, ids.instance_key(key, uid, sop_uid)).get(
        field_paths=["owner"])
    if snap.exists and (snap.to_dict() or {}).get("owner") == uid:
        return MetadataPending("this instance's metadata is being prepared; try again soon")
    return _not_found()


def metadata(clients: Clients, uid: str, study_uid: str, series_uid: str | None,
             sop_uid: str | None, *, base: str, accept: str | None,
             if_none_match: str | None, accept_encoding: str | None = None,
             pointers: list[dict[str, Any]] | None = None) -> Reply:
    """Study (``series_uid`` None), series or instance metadata of the caller's.

    ``pointers`` (the builds, in series order) replaces the caller's catalog: the
    documents that back this request for another credential (a de-identified share's
    copy, :mod:`pacs.dicomweb.copy_view`).

    Study and series metadata stream one series at a time (a study of many large series
    never sits whole in memory, nor meets the 32 MiB cap of unstreamed answers), gzipped
    on the fly when ``Accept-Encoding`` allows it (JSON shrinks about tenfold).

    Raises
    ------
    NotFound
        Not the caller's, or unknown (the same 404).
    MetadataPending
        A series without a metadata build yet (503).
    NotAcceptable
        ``Accept`` allows neither ``application/dicom+json`` nor ``application/json``.
    """
    offer = choose(accept, OFFERS)
    from_catalog = pointers is None
    if pointers is None:
        pointers = _pointers(clients, uid, study_uid, series_uid)
    gzipped = _accepts_gzip(accept_encoding)
    etag = _etag(pointers, base, f"{offer.media_type}|{sop_uid or ''}|{gzipped}")
    headers = {"ETag": etag, "Cache-Control": "private, no-cache",
               "X-Content-Type-Options": "nosniff",
               "Vary": "Accept, Accept-Encoding, Authorization"}
    if _matches(if_none_match, etag):
        return Reply(304, headers)
    marker, url = series_metadata.BASE.encode(), base.encode()
    first = (_read(clients, pointers[0]).replace(marker, url)  # a 503 before any byte
             if pointers else b"[]")
    if sop_uid is not None:
        found = [item for item in json.loads(first)
                 if (item.get("00080018", {}).get("Value") or [None])[0] == sop_uid]
        if not found:
            raise (_instance_missing(clients, uid, study_uid, series_uid, sop_uid)
                   if from_catalog else _not_found())
        chunks: Iterator[bytes] = iter([json.dumps(found, separators=(",", ":")).encode()])
    else:
        rest = (_read(clients, p).replace(marker, url) for p in pointers[1:])
        chunks = _joined(itertools.chain([first], rest))
    headers["Content-Type"] = offer.media_type
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        chunks = _gzip(chunks)
    return Reply(200, headers, chunks)


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _joined(arrays: Iterator[bytes]) -> Iterator[bytes]:
    """One JSON array from several (each a series' array), a series at a time."""
    yield b"["
    wrote = False
    for array in arrays:
        inner = array.strip()[1:-1].strip()
        if inner:
            yield (b"," if wrote else b"") + inner
            wrote = True
    yield b"]"


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        if out := packer.compress(chunk):
            yield out
    yield packer.flush()
