"""Searching the caller's studies, and reading one of them.

The filters are those of :mod:`pacs.studies.filters`; the query they become, and the cursor
of a page, are :mod:`pacs.studies.query`'s. This module runs the search page by page.

Results are the caller's studies only (``owner == uid`` is the first filter of every query;
the security rules demand the same of a web client), newest study date first (then by
document id, so the order is total), in pages of ``limit`` (default 50, at most 200) with an
opaque cursor.

Parts of a filter the index cannot hold are checked on each candidate instead: the other
words of a several-word name or keyword, name words longer than the indexed prefix, and the
modality when name, modality and keyword are all given. Such a search reads at most
:data:`SCAN_BUDGET` documents per page; a page may then hold fewer than ``limit`` studies
while ``next_cursor`` still says there may be more.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pacs.errors import BadRequest, NotFound
from pacs.indexing import catalog
from pacs.studies.filters import Filters, coerce_filters
from pacs.studies.query import STUDY_KEY, build_query, decode_cursor, encode_cursor

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SCAN_BUDGET = 1000
# What a list row shows: the study fields, the counts and the preview reference.
STUDY_STATE = ("modalities", "series_count", "instance_count", "total_bytes", "preview",
               "created_at", "updated_at")
LIST_FIELDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
               "StudyTime", "AccessionNumber", "StudyDescription", "ModalitiesInStudy",
               *STUDY_STATE)
SERIES_FIELDS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
                 "BodyPartExamined", "instance_count", "total_bytes", "preview", "created_at")
_CHECK_FIELDS = ("search.sort", "search.name_tokens", "search.description_words",
                 "search.modalities", "search.patient_id", "search.accession")


def study_not_found() -> NotFound:
    """The one answer for a study that does not exist or is not the caller's."""
    return NotFound("no such study", code="not_found")


def parse_limit(limit: Any) -> int:
    """Page size: :data:`DEFAULT_LIMIT` when absent, capped at :data:`MAX_LIMIT`."""
    if limit is None or limit == "":
        return DEFAULT_LIMIT
    if isinstance(limit, bool):
        raise BadRequest("limit must be a whole number", code="bad_limit")
    try:
        value = int(limit)
    except (TypeError, ValueError):
        raise BadRequest("limit must be a whole number", code="bad_limit") from None
    if value < 1:
        raise BadRequest("limit must be 1 or more", code="bad_limit")
    return min(value, MAX_LIMIT)


def plain(value: Any) -> Any:
    """Firestore values as JSON-able values (timestamps as ISO 8601)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def public_study(study_key: str, doc: Mapping[str, Any],
                 fields: tuple[str, ...] = LIST_FIELDS) -> dict[str, Any]:
    """What a client sees of a study: ``id`` and the chosen fields."""
    return {"id": study_key, **{k: plain(doc.get(k)) for k in fields}}


def search_studies(firestore: Any, uid: str, filters: Filters | Mapping[str, Any] | None = None,
                   cursor: str | None = None, limit: Any = None) -> dict[str, Any]:
    """One page of the caller's studies matching ``filters``, newest first.

    Parameters
    ----------
    firestore : google.cloud.firestore.Client
    uid : str
        The caller (only their studies are ever read).
    filters : Filters or mapping, optional
        See the module docstring; a mapping is validated by :meth:`Filters.parse`.
    cursor : str, optional
        ``next_cursor`` of the previous page.
    limit : int or str, optional
        Page size, default :data:`DEFAULT_LIMIT`, capped at :data:`MAX_LIMIT`.

    Returns
    -------
    dict
        ``studies`` (each with ``id``, the list fields, counts and preview) and
        ``next_cursor`` (None on the last page).

    Raises
    ------
    BadRequest
        Bad filter, cursor or limit.
    """
    f = coerce_filters(filters)
    size = parse_limit(limit)
    position = decode_cursor(cursor) if cursor else None
    base = build_query(firestore, uid, f).select(list(LIST_FIELDS + _CHECK_FIELDS))
    check = f.needs_check
    found: list[dict[str, Any]] = []
    last_found: tuple[str, str] | None = None
    scanned = 0
    while True:
        if check:
            batch = min(max(2 * (size - len(found)), 100), SCAN_BUDGET - scanned)
        else:
            batch = size - len(found) + 1
        query = base.limit(batch)
        if position:
            query = query.start_after(list(position))
        snaps = list(query.stream())
        scanned += len(snaps)
        for snap in snaps:
            doc = snap.to_dict() or {}
            search = doc.get("search") or {}
            position = (str(search.get("sort")), snap.id)
            if check and not f.matches(search):
                continue
            if len(found) == size:  # one more match exists: the page ends at the last one
                return {"studies": found, "next_cursor": encode_cursor(*last_found)}
            found.append(public_study(snap.id, doc))
            last_found = position
        if len(snaps) < batch:
            return {"studies": found, "next_cursor": None}
        if len(found) == size:
            return {"studies": found, "next_cursor": encode_cursor(*last_found)}
        if scanned >= SCAN_BUDGET:
            return {"studies": found, "next_cursor": encode_cursor(*position)}


def owned_study(firestore: Any, uid: str, study_id: Any) -> tuple[str, dict[str, Any]]:
    """The key and document of the caller's study; the same 404 for malformed, unknown and
    someone else's."""
    if not isinstance(study_id, str) or not STUDY_KEY.fullmatch(study_id):
        raise study_not_found()
    snap = catalog.study_ref(firestore, study_id).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid:
        raise study_not_found()
    return study_id, doc


def _series_order(item: tuple[str, dict[str, Any]]) -> tuple:
    number = item[1].get("SeriesNumber")
    try:
        numeric = float(number)
    except (TypeError, ValueError):
        numeric = None
    return (numeric is None, numeric or 0.0, item[0])


def get_study(firestore: Any, uid: str, study_id: Any) -> dict[str, Any]:
    """One of the caller's studies with its series (by series number).

    Returns
    -------
    dict
        ``study`` (every DICOM field of the study, counts, preview, ``id``) and ``series``
        (each with ``id``, its DICOM fields, counts and preview).

    Raises
    ------
    NotFound
        No such study of the caller's.
    """
    key, doc = owned_study(firestore, uid, study_id)
    series = [(s.id, s.to_dict() or {}) for s in
              catalog.study_ref(firestore, key).collection("series").stream()]
    study = public_study(key, doc, tuple(catalog.STUDY_FIELDS) + STUDY_STATE)
    return {"study": study,
            "series": [public_study(k, d, SERIES_FIELDS) for k, d in sorted(series, key=_series_order)]}
