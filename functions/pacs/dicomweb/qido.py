"""QIDO-RS (PS3.18 §10.6) over the caller's own studies.

Query parameters are checked first (:func:`parse_query`): an unknown key, a key a level
does not match on, a malformed value or an ``includefield`` of an attribute this service
does not index is a 400 naming the reason, never silently ignored. Matching of each value
is :mod:`pacs.dicomweb.matching`'s; which studies match, through our own search's indexes
and a bounded, paged scan for the rest, is :mod:`pacs.dicomweb.study_match`'s. Searches of
all series and all instances (``/series``, ``/instances``) are :mod:`pacs.dicomweb.qido_root`'s.

Series and instance searches within a study read the one study's series, or the one
series' instances (bounded by the study and series sizes). The caller's identity comes from
the verified token alone; other users' UIDs are simply not found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pacs import ids
from pacs.dicomweb import attributes, matching, restriction, study_match
from pacs.indexing import catalog

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 100_000
MAX_UIDS = 100
MAX_VALUE_CHARS = 128
TRUNCATED_WARNING = ("299 {+}: The number of results exceeded the maximum supported by the "
                     "server. Narrow the query.")

STUDY_KEYS = ("PatientName", "PatientID", "AccessionNumber", "StudyDescription", "StudyDate",
              "StudyTime", "StudyInstanceUID", "ModalitiesInStudy")
SERIES_KEYS = ("Modality", "SeriesInstanceUID")
INSTANCE_KEYS = ("SOPInstanceUID", "SOPClassUID")
UID_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
TEXT_KEYS = ("PatientName", "PatientID", "AccessionNumber", "StudyDescription")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_refuse = matching.refuse


@dataclass(frozen=True)
class Query:
    """A checked QIDO-RS query: matching values by keyword, ``limit``, ``offset``,
    ``fuzzymatching`` and the ``includefield`` keywords (``include_all`` for ``all``)."""

    matches: dict[str, str] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    fuzzy: bool = False
    include: tuple[str, ...] = ()
    include_all: bool = False

    def uids(self, keyword: str) -> tuple[str, ...]:
        value = self.matches.get(keyword)
        return tuple(dict.fromkeys(value.split("\\"))) if value else ()

    def keywords(self, level: str) -> tuple[str, ...]:
        """The attributes an answer at ``level`` holds (defaults and ``includefield``)."""
        return attributes.wanted(level, self.include, self.include_all)


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
    if value == "*" or keyword in TEXT_KEYS:
        return
    if matching.has_wildcard(value):
        raise _refuse(f"{keyword}: wildcards (* and ?) are not supported on this attribute; "
                      "they are on " + ", ".join(TEXT_KEYS), code="unsupported_wildcard")


def _includes(value: str, held: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    names, include_all = [], False
    for name in filter(None, (v.strip() for v in value.split(","))):
        if name.lower() == "all":
            include_all = True
            continue
        keyword = attributes.keyword_of(name)
        if keyword is None:
            raise _refuse(f"includefield {name[:64]!r}: this attribute is not indexed; "
                          "answers can hold " + ", ".join(held))
        names.append(keyword)
    return tuple(names), include_all


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
        The keywords its answers can hold (named in a refusal of ``includefield``).

    ``includefield`` takes keywords, ``ggggeeee`` tags and ``all``; an attribute this
    service knows but the level does not hold (``Modality`` on a study search, as OHIF asks)
    is accepted and absent from the answer, an attribute it does not index is refused.

    Raises
    ------
    BadRequest
        ``unsupported_query`` (a known attribute this level does not match on,
        ``includefield`` of an attribute not indexed, a ``fuzzymatching`` that is neither
        true nor false), ``unknown_query_key``, ``unsupported_wildcard``, ``bad_value``,
        ``bad_limit``, ``bad_offset``.
    """
    matches: dict[str, str] = {}
    limit, offset, fuzzy = DEFAULT_LIMIT, 0, False
    include: tuple[str, ...] = ()
    include_all = False
    for key, raw in items:
        value = raw.strip()
        if key == "limit":
            limit = _whole(value, "limit", 1, MAX_LIMIT)
        elif key == "offset":
            offset = _whole(value, "offset", 0, MAX_OFFSET)
        elif key == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise _refuse("fuzzymatching is true or false")
            fuzzy = value.lower() == "true"
        elif key == "includefield":
            more, every = _includes(value, returned)
            include, include_all = include + more, include_all or every
        else:
            keyword = attributes.keyword_of(key)
            if keyword is None:
                raise _refuse(f"unknown query key {key[:64]!r}; this search matches on "
                              + ", ".join(keys) + ", limit, offset", code="unknown_query_key")
            if keyword not in keys:
                raise _refuse(f"matching on {keyword} is not supported on this resource; it "
                              "matches on " + ", ".join(keys))
            if keyword in matches:
                raise _refuse(f"{keyword} is given twice", code="bad_value")
            _check_value(keyword, value)
            if value and value.strip("*"):  # empty (and only *) match everything
                matches[keyword] = value
    return Query(matches, limit, offset, fuzzy, include, include_all)


def match_studies(query: Query, also_modality: str | None = None) -> study_match.StudyMatch:
    """The study-level part of a query (see :mod:`pacs.dicomweb.study_match`)."""
    return study_match.study_match(
        query.matches, fuzzy=query.fuzzy, modalities=query.uids("ModalitiesInStudy"),
        study_uids=query.uids("StudyInstanceUID"), also_modality=also_modality)


def search_studies(firestore: Any, hash_key: bytes, uid: str,
                   items: Iterable[tuple[str, str]], retrieve_base: str | None = None
                   ) -> tuple[list[dict[str, Any]], bool]:
    """The caller's studies matching a QIDO-RS query, newest first.

    Returns
    -------
    (list of dict, bool)
        The studies as DICOM JSON (PS3.18 study attributes, with RetrieveURL when
        ``retrieve_base`` is given) and whether the scan stopped at
        :data:`~pacs.dicomweb.study_match.SCAN_BUDGET` before the page was full.
    """
    query = parse_query(items, STUDY_KEYS, attributes.HELD["study"])
    match = match_studies(query)
    wanted = query.offset + query.limit
    state = study_match.ScanState()
    hits: list[Mapping[str, Any]] = []
    for _, doc in study_match.studies(firestore, hash_key, uid, match, state, wanted):
        hits.append(doc)
        if len(hits) == wanted:
            break
    keywords = query.keywords("study")
    return [attributes.study_json(d, study_url(retrieve_base, d.get("StudyInstanceUID")),
                                  keywords) for d in hits[query.offset:]], state.truncated


def study_url(base: str | None, study_uid: Any) -> str | None:
    """The RetrieveURL of a study (None without a base)."""
    return f"{base}/studies/{study_uid}" if base else None


def is_uid(value: str) -> bool:
    """A DICOM UID: at most 64 characters of digits and dots."""
    return len(value) <= 64 and bool(_UID.fullmatch(value))


def _owned_study(firestore: Any, hash_key: bytes, uid: str, study_uid: str,
                 opening: bool = False) -> tuple[str, dict[str, Any]] | None:
    """The caller's study of this UID (key and document), or None: unknown UIDs, malformed
    ones and other users' are all simply absent. ``opening``: see :func:`open_study`."""
    if not is_uid(study_uid):
        return None
    key = ids.study_key(hash_key, uid, study_uid)
    ref = catalog.study_ref(firestore, key)
    if opening:  # the account's flag comes in the same round trip as the study
        user = firestore.collection("users").document(uid)
        snaps = {s.reference.path: s for s in firestore.get_all([ref, user])}
        snap, account = snaps[ref.path], snaps[user.path]
    else:
        snap, account = ref.get(), None
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid:
        return None
    if opening and (doc.get("restricted") is True or restriction.flagged(account)):
        raise restriction.refusal()
    return key, doc


def open_study(firestore: Any, hash_key: bytes, uid: str, study_uid: str
               ) -> tuple[str, dict[str, Any]] | None:
    """:func:`_owned_study` for reading the study beyond its listing (retrieve, metadata,
    frames, bulk data, rendered, thumbnails): 403 ``restricted`` while processing of the
    account (``users/{uid}.restricted``) or the study (``studies/{key}.restricted``) is
    restricted, as :func:`pacs.links.manifests.check_not_restricted` refuses the viewer.
    Both flags are read in one batched read with the study document, so opening costs no
    round trip more than finding the study (searches still list a restricted study:
    storage goes on). Other users' studies are None first (404, never 403)."""
    return _owned_study(firestore, hash_key, uid, study_uid, opening=True)


def _number_order(field_name: str, uid_field: str) -> Callable[[Mapping[str, Any]], tuple]:
    def order(doc: Mapping[str, Any]) -> tuple:
        try:
            number = float(doc.get(field_name))
        except (TypeError, ValueError):
            number = None
        return (number is None, number or 0.0, str(doc.get(uid_field) or ""))
    return order


def series_check(query: Query) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a series document meets the query's series keys (Modality, folded; UIDs)."""
    modality = query.matches.get("Modality", "").upper()
    series_uids = set(query.uids("SeriesInstanceUID"))
    return lambda d: ((not modality or str(d.get("Modality") or "").upper() == modality)
                      and (not series_uids or d.get("SeriesInstanceUID") in series_uids))


def instance_check(query: Query) -> Callable[[Mapping[str, Any]], bool]:
    """Whether an instance document meets the query's instance keys."""
    sop_uids = set(query.uids("SOPInstanceUID"))
    classes = set(query.uids("SOPClassUID"))
    return lambda d: ((not sop_uids or d.get("SOPInstanceUID") in sop_uids)
                      and (not classes or d.get("SOPClassUID") in classes))


series_order = _number_order("SeriesNumber", "SeriesInstanceUID")
instance_order = _number_order("InstanceNumber", "SOPInstanceUID")


def series_url(base: str | None, study_uid: Any, series_uid: Any) -> str | None:
    """The RetrieveURL of a series (None without a base)."""
    return f"{base}/studies/{study_uid}/series/{series_uid}" if base else None


def instance_url(base: str | None, study_uid: Any, series_uid: Any, sop_uid: Any) -> str | None:
    """The RetrieveURL of an instance (None without a base)."""
    return f"{base}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}" if base \
        else None


def search_series(firestore: Any, hash_key: bytes, uid: str, study_uid: str,
                  items: Iterable[tuple[str, str]], retrieve_base: str | None = None
                  ) -> list[dict[str, Any]]:
    """The series of one of the caller's studies matching the query, by series number;
    an empty list for a study that is not the caller's."""
    query = parse_query(items, SERIES_KEYS, attributes.HELD["series"])
    owned = _owned_study(firestore, hash_key, uid, study_uid)
    if owned is None:
        return []
    check = series_check(query)
    docs = [s.to_dict() or {} for s in
            catalog.study_ref(firestore, owned[0]).collection("series").stream()]
    hits = sorted((d for d in docs if d.get("owner") == uid and check(d)), key=series_order)
    page = hits[query.offset:query.offset + query.limit]
    keywords = query.keywords("series")
    return [attributes.series_json(study_uid, d, series_url(
        retrieve_base, study_uid, d.get("SeriesInstanceUID")), keywords) for d in page]


def owned_series(firestore: Any, hash_key: bytes, uid: str, study_uid: str, series_uid: str,
                 opening: bool = False) -> tuple[str, str] | None:
    """(study key, series key) of the caller's series, or None (absent, not the caller's).
    ``opening``: 403 ``restricted`` as :func:`open_study`."""
    owned = _owned_study(firestore, hash_key, uid, study_uid, opening)
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
    query = parse_query(items, INSTANCE_KEYS, attributes.HELD["instance"])
    owned = owned_series(firestore, hash_key, uid, study_uid, series_uid)
    if owned is None:
        return []
    check = instance_check(query)
    docs = [s.to_dict() or {} for s in
            catalog.series_ref(firestore, *owned).collection("instances").stream()]
    hits = sorted((d for d in docs if d.get("owner") == uid and check(d)), key=instance_order)
    page = hits[query.offset:query.offset + query.limit]
    keywords = query.keywords("instance")
    return [attributes.instance_json(study_uid, series_uid, d, instance_url(
        retrieve_base, study_uid, series_uid, d.get("SOPInstanceUID")), keywords) for d in page]
