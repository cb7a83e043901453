"""Search filters: what a caller may ask of :func:`pacs.studies.search.search_studies`, validated
and normalized, and how a study's ``search`` map is checked against them.

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

:meth:`Filters.index_term` and :meth:`Filters.sort_bounds` give what the query can ask of
the index (:mod:`pacs.studies.query`); :meth:`Filters.matches` checks all of it on one study.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pacs.errors import BadRequest
from pacs.indexing import search_keys

MAX_FILTER_CHARS = 128
MAX_WORDS = 8
FILTER_KEYS = ("name", "patient_id", "date", "date_from", "date_to", "modality", "accession",
               "keyword")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DICOM_RANGE = re.compile(r"^(\d{8})?-(\d{8})?$")


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
        lower bound of :data:`~pacs.indexing.search_keys.NO_DATE`, which is exclusive (studies
        without a date never match a date filter)."""
        if not self.has_dates:
            return None, None
        low = self.date_from or search_keys.NO_DATE
        high = f"{self.date_to}999999" if self.date_to else None
        return low, high


def coerce_filters(filters: Filters | Mapping[str, Any] | None) -> Filters:
    """``filters`` as :class:`Filters` (a raw mapping or None through :meth:`Filters.parse`)."""
    return filters if isinstance(filters, Filters) else Filters.parse(filters)
