"""Searching the caller's studies, and reading one of them.

Filters (all optional, combined with AND):

``name``
    Patient name prefix: each word given must begin some component of the name (family,
    given, middle, ... of any ``^``/``=``-separated group), case- and accent-insensitive:
    ``mul``, ``JUR`` and ``jürg`` all find ``Müller^Jürgen``.
``patient_id``, ``accession``
    Exact patient ID or accession number (case- and accent-insensitive).
``date``
    One study date (``YYYYMMDD`` or ``YYYY-MM-DD``), or a DICOM range ``FROM-TO``, ``FROM-``
    or ``-TO``.
``date_from``, ``date_to``
    Inclusive bounds; either may be left out (not together with ``date``). Studies without
    a date match no date filter.
``modality``
    Studies containing a series of this modality (``CT``, ``MR``, ...).
``keyword``
    Word(s) of the study description, whole words, case- and accent-insensitive.

Results are the caller's studies only (``owner == uid`` is the first filter of every query;
the security rules demand the same of a web client), newest study date first (then by
document id, so the order is total), in pages of ``limit`` (default 50, at most 200) with an
opaque cursor.

Query shape (see :mod:`pacs.search_keys` for the key layout): ``owner ==``, then
``search.patient_id ==`` and ``search.accession ==`` when given, then one
``search.terms array-contains`` built from the name, modality and keyword, then a range on
``search.sort`` for dates, ordered by ``search.sort`` and ``__name__``, both descending.
:func:`build_query` builds it; a web client builds the same one, and
``tests/unit/test_search_indexes.py`` checks every shape it can take against
``firestore.indexes.json``.

Parts of a filter the index cannot hold are checked on each candidate instead: the other
words of a several-word name or keyword, name words longer than the indexed prefix, and the
modality when name, modality and keyword are all given. Such a search reads at most
:data:`SCAN_BUDGET` documents per page; a page may then hold fewer than ``limit`` studies
while ``next_cursor`` still says there may be more.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pacs import indexing, search_keys
from pacs.errors import BadRequest, NotFound

COLLECTION = "studies"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SCAN_BUDGET = 1000
MAX_FILTER_CHARS = 128
MAX_WORDS = 8
FILTER_KEYS = ("name", "patient_id", "date", "date_from", "date_to", "modality", "accession",
               "keyword")
STUDY_KEY = re.compile(r"^[0-9a-f]{32}$")
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
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DICOM_RANGE = re.compile(r"^(\d{8})?-(\d{8})?$")
_CURSOR_SORT = re.compile(r"^\d{8}(\d{6})?$")


def study_not_found() -> NotFound:
    """The one answer for a study that does not exist or is not the caller's."""
    return NotFound("no such study", code="not_found")


def _date(value: str, code: str = "bad_date") -> str:
    """``YYYYMMDD`` from ``YYYYMMDD`` or ``YYYY-MM-DD``, checked against the calendar."""
    value = value.strip()
    iso = _ISO_DATE.fullmatch(value)
    compact = "".join(iso.groups()) if iso else value
    try:
        if len(compact) != 8 or not compact.isdigit():
            raise ValueError
        datetime.strptime(compact, "%Y%m%d")
    except ValueError:
        raise BadRequest(f"not a date: use YYYYMMDD or YYYY-MM-DD ({value[:20]!r})",
                         code=code) from None
    return compact


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"{key} must be text", code=f"bad_{key}")
    value = str(value).strip()
    if len(value) > MAX_FILTER_CHARS:
        raise BadRequest(f"{key} is longer than {MAX_FILTER_CHARS} characters", code=f"bad_{key}")
    return value or None


def _longest(values: tuple[str, ...]) -> str:
    return max(values, key=len)


@dataclass(frozen=True)
class Filters:
    """Validated, normalized search filters.

    Attributes
    ----------
    name : tuple of str
        Folded name words; each must begin some name token.
    patient_id, accession : str or None
        Folded exact values.
    date_from, date_to : str or None
        Inclusive ``YYYYMMDD`` bounds.
    modality : str or None
        Upper-case modality code.
    keywords : tuple of str
        Folded description words (two characters or more), all required.
    """

    name: tuple[str, ...] = ()
    patient_id: str | None = None
    accession: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    modality: str | None = None
    keywords: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Filters:
        """Filters from a mapping of the names in :data:`FILTER_KEYS` to text.

        Raises
        ------
        BadRequest
            Unknown filter, malformed value, or contradictory dates; ``code`` says which.
        """
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(FILTER_KEYS))
        if unknown:
            raise BadRequest(f"unknown filter {unknown[0]!r}; use " + ", ".join(FILTER_KEYS),
                             code="unknown_filter")
        values = {key: _text(raw, key) for key in FILTER_KEYS}
        name: tuple[str, ...] = ()
        if values["name"]:
            name = tuple(dict.fromkeys(search_keys.split_words(values["name"])))
            if not name:
                raise BadRequest("name needs at least one letter or digit", code="bad_name")
        keywords: tuple[str, ...] = ()
        if values["keyword"]:
            keywords = tuple(dict.fromkeys(w for w in search_keys.split_words(values["keyword"])
                                           if len(w) > 1))
            if not keywords:
                raise BadRequest("keyword needs a word of two characters or more",
                                 code="bad_keyword")
        if len(name) > MAX_WORDS or len(keywords) > MAX_WORDS:
            raise BadRequest(f"at most {MAX_WORDS} words per filter", code="too_many_words")
        modality = None
        if values["modality"]:
            modality = search_keys.modality_code(values["modality"])
            if modality is None:
                raise BadRequest("modality must be a DICOM modality code such as CT or MR",
                                 code="bad_modality")
        date_from, date_to = cls._dates(values)
        return cls(
            name=name,
            patient_id=search_keys.fold(values["patient_id"]).strip() if values["patient_id"]
            else None,
            accession=search_keys.fold(values["accession"]).strip() if values["accession"]
            else None,
            date_from=date_from, date_to=date_to, modality=modality, keywords=keywords)

    @staticmethod
    def _dates(values: dict[str, str | None]) -> tuple[str | None, str | None]:
        date = values["date"]
        if date and (values["date_from"] or values["date_to"]):
            raise BadRequest("give either date or date_from/date_to", code="bad_date")
        if date:
            dicom_range = _DICOM_RANGE.fullmatch(date)
            if dicom_range and date != "-":
                low, high = dicom_range.groups()
                date_from, date_to = (_date(low) if low else None), (_date(high) if high else None)
            else:
                date_from = date_to = _date(date)
        else:
            date_from = _date(values["date_from"], "bad_date_from") if values["date_from"] else None
            date_to = _date(values["date_to"], "bad_date_to") if values["date_to"] else None
        if date_from and date_to and date_from > date_to:
            raise BadRequest("the date range ends before it starts", code="bad_date_range")
        return date_from, date_to

    @property
    def has_dates(self) -> bool:
        return bool(self.date_from or self.date_to)

    def index_term(self) -> str | None:
        """The one ``search.terms`` value to ask for, or None when no contains-filter is set.

        The name uses its longest word (cut to the indexed prefix length), the keyword its
        longest word; with all three of name, modality and keyword, the modality is left to
        :meth:`matches`, since triples are not stored.
        """
        parts = []
        if self.name:
            parts.append(search_keys.term(search_keys.NAME,
                                          _longest(self.name)[:search_keys.MAX_PREFIX]))
        if self.modality and not (self.name and self.keywords):
            parts.append(search_keys.term(search_keys.MODALITY, self.modality))
        if self.keywords:
            parts.append(search_keys.term(search_keys.WORD, _longest(self.keywords)))
        return search_keys.combine(*parts) if parts else None

    @property
    def needs_check(self) -> bool:
        """Whether some part of the filters is not expressed by the query itself."""
        return (len(self.name) > 1 or len(self.keywords) > 1
                or any(len(w) > search_keys.MAX_PREFIX for w in self.name)
                or bool(self.name and self.modality and self.keywords))

    def matches(self, search: Mapping[str, Any]) -> bool:
        """Whether a study's ``search`` map meets every filter (all of them, indexed or not)."""
        tokens = search.get("name_tokens") or []
        if not all(any(t.startswith(w) for t in tokens) for w in self.name):
            return False
        if self.patient_id is not None and search.get("patient_id") != self.patient_id:
            return False
        if self.accession is not None and search.get("accession") != self.accession:
            return False
        if self.modality and self.modality not in (search.get("modalities") or []):
            return False
        if not set(self.keywords) <= set(search.get("description_words") or []):
            return False
        sort = str(search.get("sort") or search_keys.NO_DATE)
        low, high = self.sort_bounds()
        return (low is None or (sort > low if low == search_keys.NO_DATE else sort >= low)) and (
            high is None or sort <= high)

    def sort_bounds(self) -> tuple[str | None, str | None]:
        """``search.sort`` bounds of the date filter: (lower, upper), both inclusive except a
        lower bound of :data:`~pacs.search_keys.NO_DATE`, which is exclusive (studies without
        a date never match a date filter)."""
        if not self.has_dates:
            return None, None
        low = self.date_from or search_keys.NO_DATE
        high = f"{self.date_to}999999" if self.date_to else None
        return low, high


def coerce_filters(filters: Filters | Mapping[str, Any] | None) -> Filters:
    return filters if isinstance(filters, Filters) else Filters.parse(filters)


def build_query(firestore: Any, uid: str, filters: Filters | Mapping[str, Any] | None) -> Any:
    """The Firestore query of a search (without cursor, limit or projection).

    Parameters
    ----------
    firestore : google.cloud.firestore.Client
    uid : str
        The caller; the query is always constrained to ``owner == uid``.
    filters : Filters or mapping
        Parsed filters, or the raw mapping (see :meth:`Filters.parse`).

    Returns
    -------
    google.cloud.firestore_v1.query.Query
        Ordered by ``search.sort`` then ``__name__``, both descending.
    """
    from google.cloud.firestore_v1.base_query import BaseQuery, FieldFilter

    if not uid:
        raise ValueError("a search needs the caller's uid")
    f = coerce_filters(filters)
    query = firestore.collection(COLLECTION).where(filter=FieldFilter("owner", "==", uid))
    if f.patient_id is not None:
        query = query.where(filter=FieldFilter("search.patient_id", "==", f.patient_id))
    if f.accession is not None:
        query = query.where(filter=FieldFilter("search.accession", "==", f.accession))
    term = f.index_term()
    if term:
        query = query.where(filter=FieldFilter("search.terms", "array_contains", term))
    low, high = f.sort_bounds()
    if low is not None:
        op = ">" if low == search_keys.NO_DATE else ">="
        query = query.where(filter=FieldFilter("search.sort", op, low))
    if high is not None:
        query = query.where(filter=FieldFilter("search.sort", "<=", high))
    return (query.order_by("search.sort", direction=BaseQuery.DESCENDING)
            .order_by("__name__", direction=BaseQuery.DESCENDING))


def encode_cursor(sort: str, study_key: str) -> str:
    """An opaque cursor: the position (sort key, document id) of the last study returned."""
    raw = json.dumps([sort, study_key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (sort key, document id) of a cursor; BadRequest ``bad_cursor`` when malformed."""
    try:
        if not isinstance(cursor, str) or len(cursor) > 200:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort, key = json.loads(raw)
        if not (isinstance(sort, str) and _CURSOR_SORT.fullmatch(sort)
                and isinstance(key, str) and STUDY_KEY.fullmatch(key)):
            raise ValueError
    except (ValueError, TypeError):
        raise BadRequest("bad cursor: pass next_cursor of the previous page as is",
                         code="bad_cursor") from None
    return sort, key


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
    snap = indexing.study_ref(firestore, study_id).get()
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
              indexing.study_ref(firestore, key).collection("series").stream()]
    study = public_study(key, doc, tuple(indexing.STUDY_FIELDS) + STUDY_STATE)
    return {"study": study,
            "series": [public_study(k, d, SERIES_FIELDS) for k, d in sorted(series, key=_series_order)]}
