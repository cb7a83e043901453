"""QIDO-RS (PS3.18 §10.6) over the caller's own studies.

Query parameters are checked first (:func:`parse_query`): a key this slice cannot match on,
an unknown key, a wildcard other than a trailing ``*`` on PatientName, or
``fuzzymatching=true`` is a 400 naming the reason, never silently ignored. Study matching
reuses the search of :mod:`pacs.studies` (its filters and Firestore query) and adds what the
index cannot express, checked on each candidate:

* ``PatientName``: the name index gives candidates (every word begins a name component);
  the whole name is then compared, case- and accent-insensitively, exactly or (``Doe^J*``)
  as a prefix.
* ``StudyInstanceUID`` (one UID or a ``\\`` list): no query at all; the study documents are
  read by their keyed ids (:func:`pacs.ids.study_key` of the caller and each UID), so
  another user's UIDs are simply not there.
* ``ModalitiesInStudy`` with several values (any of them).

A scan reads at most :data:`SCAN_BUDGET` study documents; when it stops there, the answer
carries a ``Warning`` (PS3.18 §8.3.4.4) and the caller narrows the query. Series and
instance searches read the one study's series, or the one series' instances (bounded by
the study and series sizes). The caller's identity comes from the verified token alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pacs import ids
from pacs.dicomweb import attributes
from pacs.errors import BadRequest
from pacs.indexing import catalog, search_keys
from pacs.studies.filters import Filters
from pacs.studies.query import build_query

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 100_000
SCAN_BUDGET = 5000
MAX_UIDS = 100
MAX_VALUE_CHARS = 128
TRUNCATED_WARNING = ("299 {+}: The number of results exceeded the maximum supported by the "
                     "server. Narrow the query.")

STUDY_KEYS = ("PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyInstanceUID",
              "ModalitiesInStudy")
SERIES_KEYS = ("Modality", "SeriesInstanceUID")
INSTANCE_KEYS = ("SOPInstanceUID", "SOPClassUID")
UID_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_WILDCARD = re.compile(r"[*?]")


def _refuse(message: str, code: str = "unsupported_query") -> BadRequest:
    return BadRequest(message, code=code)


@dataclass(frozen=True)
class Query:
    """A checked QIDO-RS query: matching values by keyword, ``limit`` and ``offset``."""

    matches: dict[str, str] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def uids(self, keyword: str) -> tuple[str, ...]:
        value = self.matches.get(keyword)
        return tuple(dict.fromkeys(value.split("\\"))) if value else ()


def _whole(value: str, name: str, low: int, high: int) -> int:
    if not value.isdigit():
        raise _refuse(f"{name} must be a whole number", code=f"bad_{name}")
    number = int(value)
    if number < low:
        raise _refuse(f"{name} must be {low} or more", code=f"bad_{name}")
    return min(number, high)


def _check_value(keyword: str, value: str) -> None:
    if len(value) > (MAX_UIDS * 65 if keyword in UID_KEYS else MAX_VALUE_CHARS):
        raise _refuse(f"the value of {keyword} is too long", code="bad_value")
    if keyword in UID_KEYS:
        uids = value.split("\\")
        if len(uids) > MAX_UIDS:
            raise _refuse(f"at most {MAX_UIDS} UIDs in {keyword}", code="bad_value")
        if not all(len(u) <= 64 and _UID.fullmatch(u) for u in uids):
            raise _refuse(f"{keyword} must be UIDs (digits and dots), separated by \\; "
                          "wildcards are not supported on UIDs", code="bad_value")
        return
    if value == "*":  # universal matching
        return
    if keyword == "PatientName":
        if _WILDCARD.search(value[:-1] if value.endswith("*") else value):
            raise _refuse("PatientName: only a trailing * (prefix) is supported yet; * or ? "
                          "elsewhere and fuzzymatching are not", code="unsupported_wildcard")
        return
    if _WILDCARD.search(value):
        raise _refuse(f"{keyword}: wildcards (* and ?) are not supported yet",
                      code="unsupported_wildcard")


def parse_query(items: Iterable[tuple[str, str]], keys: tuple[str, ...],
                returned: tuple[str, ...]) -> Query:
    """Check the query parameters of a search at one level.

    Parameters
    ----------
    items : iterable of (key, value)
        Every query parameter as sent (repeated keys included).
    keys : tuple of str
        The keywords this level matches on.
    returned : tuple of str
        The keywords its answers hold (``includefield`` may name only these).

    Raises
    ------
    BadRequest
        ``unsupported_query`` (a known attribute this slice does not match on, ``includefield``
        of an attribute not held, ``fuzzymatching=true``), ``unknown_query_key``,
        ``unsupported_wildcard``, ``bad_value``, ``bad_limit``, ``bad_offset``.
    """
    matches: dict[str, str] = {}
    limit, offset = DEFAULT_LIMIT, 0
    for key, raw in items:
        value = raw.strip()
        if key == "limit":
            limit = _whole(value, "limit", 1, MAX_LIMIT)
        elif key == "offset":
            offset = _whole(value, "offset", 0, MAX_OFFSET)
        elif key == "fuzzymatching":
            if value.lower() != "false":
                raise _refuse("fuzzymatching=true is not supported yet")
        elif key == "includefield":
            for name in filter(None, (v.strip() for v in value.split(","))):
                if attributes.keyword_of(name) not in returned:
                    raise _refuse(f"includefield {name[:64]!r} is not supported yet: answers "
                                  "hold " + ", ".join(returned))
        else:
            keyword = attributes.keyword_of(key)
            if keyword is None:
                raise _refuse(f"unknown query key {key[:64]!r}; this search matches on "
                              + ", ".join(keys) + ", limit, offset", code="unknown_query_key")
            if keyword not in keys:
                raise _refuse(f"matching on {keyword} is not supported yet; this search "
                              "matches on " + ", ".join(keys))
            if keyword in matches:
                raise _refuse(f"{keyword} is given twice", code="bad_value")
            _check_value(keyword, value)
            if value and value != "*":  # empty (and a lone *) match everything
                matches[keyword] = value
    return Query(matches, limit, offset)


def _filters(query: Query) -> Filters:
    """The :mod:`pacs.studies` filters that give candidates for a study query."""
    m = query.matches
    raw: dict[str, str] = {}
    if "PatientName" in m:
        raw["name"] = m["PatientName"].rstrip("*")
    if "PatientID" in m:
        raw["patient_id"] = m["PatientID"]
    if "AccessionNumber" in m:
        raw["accession"] = m["AccessionNumber"]
    if "StudyDate" in m:
        raw["date"] = m["StudyDate"]
    modalities = query.uids("ModalitiesInStudy")
    if len(modalities) == 1:
        raw["modality"] = modalities[0]
    try:
        return Filters.parse(raw)
    except BadRequest as err:
        raise BadRequest(f"bad query value: {err}", code=err.code) from None


def _extra_check(query: Query) -> Callable[[Mapping[str, Any]], bool] | None:
    """What the study index cannot express, as a check of one study document."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    name = query.matches.get("PatientName")
    if name:
        wanted = search_keys.fold(name.rstrip("*"))
        if name.endswith("*"):
            checks.append(lambda d: search_keys.fold(d.get("PatientName") or "")
                          .startswith(wanted))
        else:
            checks.append(lambda d: search_keys.fold(d.get("PatientName") or "") == wanted)
    modalities = query.uids("ModalitiesInStudy")
    if len(modalities) > 1:
        codes = {search_keys.modality_code(m) for m in modalities} - {None}
        if not codes:
            raise _refuse("ModalitiesInStudy must be modality codes such as CT or MR",
                          code="bad_value")
        checks.append(lambda d: bool(codes & set((d.get("search") or {}).get("modalities")
                                                 or [])))
    if not checks:
        return None
    return lambda doc: all(check(doc) for check in checks)


def _newest_first(item: tuple[str, Mapping[str, Any]]) -> tuple[str, str]:
    return (str((item[1].get("search") or {}).get("sort") or ""), item[0])


def search_studies(firestore: Any, hash_key: bytes, uid: str,
                   items: Iterable[tuple[str, str]]) -> tuple[list[dict[str, Any]], bool]:
    """The caller's studies matching a QIDO-RS query, newest first.

    Returns
    -------
    (list of dict, bool)
        The studies as DICOM JSON (PS3.18 study attributes) and whether the scan stopped at
        :data:`SCAN_BUDGET` before the page was full.
    """
    query = parse_query(items, STUDY_KEYS, attributes.STUDY_ATTRIBUTES)
    filters = _filters(query)
    extra = _extra_check(query)

    def matches(doc: Mapping[str, Any]) -> bool:
        return (doc.get("owner") == uid and filters.matches(doc.get("search") or {})
                and (extra is None or extra(doc)))

    wanted = query.offset + query.limit
    study_uids = query.uids("StudyInstanceUID")
    if study_uids:
        refs = [catalog.study_ref(firestore, ids.study_key(hash_key, uid, u)) for u in study_uids]
        found = [(s.id, s.to_dict() or {}) for s in firestore.get_all(refs) if s.exists]
        hits = sorted(((k, d) for k, d in found if matches(d)), key=_newest_first, reverse=True)
        return [attributes.study_json(d) for _, d in hits[query.offset:wanted]], False
    checking = filters.needs_check or extra is not None
    budget = SCAN_BUDGET if checking else min(wanted, SCAN_BUDGET)
    hits: list[dict[str, Any]] = []
    scanned = 0
    for snap in build_query(firestore, uid, filters).limit(budget).stream():
        scanned += 1
        doc = snap.to_dict() or {}
        if not matches(doc):
            continue
        hits.append(doc)
        if len(hits) == wanted:
            break
    truncated = len(hits) < wanted and scanned >= SCAN_BUDGET
    return [attributes.study_json(d) for d in hits[query.offset:]], truncated


def is_uid(value: str) -> bool:
    """A DICOM UID: at most 64 characters of digits and dots."""
    return len(value) <= 64 and bool(_UID.fullmatch(value))


def _owned_study(firestore: Any, hash_key: bytes, uid: str, study_uid: str
                 ) -> tuple[str, dict[str, Any]] | None:
    """The caller's study of this UID (key and document), or None: unknown UIDs, malformed
    ones and other users' are all simply absent."""
    if not is_uid(study_uid):
        return None
    key = ids.study_key(hash_key, uid, study_uid)
    snap = catalog.study_ref(firestore, key).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid:
        return None
    return key, doc


def _number_order(field_name: str, uid_field: str) -> Callable[[Mapping[str, Any]], tuple]:
    def order(doc: Mapping[str, Any]) -> tuple:
        try:
            number = float(doc.get(field_name))
        except (TypeError, ValueError):
            number = None
        return (number is None, number or 0.0, str(doc.get(uid_field) or ""))
    return order


def search_series(firestore: Any, hash_key: bytes, uid: str, study_uid: str,
                  items: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """The series of one of the caller's studies matching the query, by series number;
    an empty list for a study that is not the caller's."""
    query = parse_query(items, SERIES_KEYS, attributes.SERIES_ATTRIBUTES)
    owned = _owned_study(firestore, hash_key, uid, study_uid)
    if owned is None:
        return []
    modality = query.matches.get("Modality", "").upper()
    series_uids = set(query.uids("SeriesInstanceUID"))
    docs = [s.to_dict() or {} for s in
            catalog.study_ref(firestore, owned[0]).collection("series").stream()]
    hits = sorted((d for d in docs if d.get("owner") == uid
                   and (not modality or str(d.get("Modality") or "").upper() == modality)
                   and (not series_uids or d.get("SeriesInstanceUID") in series_uids)),
                  key=_number_order("SeriesNumber", "SeriesInstanceUID"))
    page = hits[query.offset:query.offset + query.limit]
    return [attributes.series_json(study_uid, d) for d in page]


def owned_series(firestore: Any, hash_key: bytes, uid: str, study_uid: str, series_uid: str
                 ) -> tuple[str, str] | None:
    """(study key, series key) of the caller's series, or None (absent, not the caller's)."""
    owned = _owned_study(firestore, hash_key, uid, study_uid)
    if owned is None or not is_uid(series_uid):
        return None
    series = ids.series_key(hash_key, uid, series_uid)
    snap = catalog.series_ref(firestore, owned[0], series).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid:
        return None
    return owned[0], series


def search_instances(firestore: Any, hash_key: bytes, uid: str, study_uid: str,
                     series_uid: str, items: Iterable[tuple[str, str]],
                     retrieve_base: str | None = None) -> list[dict[str, Any]]:
    """The instances of one of the caller's series matching the query, by instance number;
    an empty list for a series that is not the caller's. ``retrieve_base`` (the service's
    base URL) adds each instance's RetrieveURL."""
    query = parse_query(items, INSTANCE_KEYS, attributes.INSTANCE_ATTRIBUTES + ("RetrieveURL",))
    owned = owned_series(firestore, hash_key, uid, study_uid, series_uid)
    if owned is None:
        return []
    sop_uids = set(query.uids("SOPInstanceUID"))
    classes = set(query.uids("SOPClassUID"))
    docs = [s.to_dict() or {} for s in
            catalog.series_ref(firestore, *owned).collection("instances").stream()]
    hits = sorted((d for d in docs if d.get("owner") == uid
                   and (not sop_uids or d.get("SOPInstanceUID") in sop_uids)
                   and (not classes or d.get("SOPClassUID") in classes)),
                  key=_number_order("InstanceNumber", "SOPInstanceUID"))
    page = hits[query.offset:query.offset + query.limit]

    def url(doc: Mapping[str, Any]) -> str | None:
        if not retrieve_base:
            return None
        return (f"{retrieve_base}/studies/{study_uid}/series/{series_uid}/instances/"
                f"{doc.get('SOPInstanceUID')}")

    return [attributes.instance_json(study_uid, series_uid, d, url(d)) for d in page]
