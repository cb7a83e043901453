"""Normalized search keys stored on each study (``studies/{key}.search``), and why they
have the layout they have.

Firestore answers a query only from an index, and its rules constrain the query shapes:

* at most one ``array-contains`` per query;
* a range filter must be on the first ``orderBy`` field;
* every query here is ``owner == uid`` (the rules demand it of web clients) and sorted
  newest first, so it needs a composite index, and every combination of fields needs its
  own index: the combinations must stay few.

So the study's searchable facts go in four places:

``search.sort`` (string)
    ``YYYYMMDDHHMMSS`` of the study date and time (``00000000`` when the date is unknown,
    which sorts last in a newest-first list). Results are ordered by it (then by document
    id); a date or date range is a range on this same field, so dates need no index of
    their own and combine with everything else.
``search.patient_id``, ``search.accession`` (strings)
    Folded (case, accents) exact values: equality filters, each combinable with anything.
``search.terms`` (array of strings)
    Everything that is a "contains" test, as namespaced terms for the one array-contains:
    ``n:<prefix>`` for every prefix (1 to :data:`MAX_PREFIX` characters) of every folded
    name token (every ``^``/``=``-separated component, split further at spaces and
    punctuation), ``m:<MODALITY>`` for every modality in the study, ``w:<word>`` for every
    folded word of the study description. Because a query may use only one array-contains,
    the *pairs* are stored too: ``n:<prefix>|m:<MOD>``, ``n:<prefix>|w:<word>``,
    ``m:<MOD>|w:<word>`` (always in the order n, m, w). A query with a name prefix and a
    modality asks for ``search.terms array-contains "n:mul|m:CT"``.

Triples (name and modality and keyword at once) are not stored: their count is the product
of three lists, and a long name with a long description would grow a document by thousands
of entries. Such a query uses the name|keyword pair and checks the modality on each
candidate (``search.modalities``) — see :mod:`pacs.studies.search`, which does the same for
names or keywords of several words. Terms grow with the product of two lists only: a typical study
(a 12-prefix name, 2 modalities, 6 words) stores ~130 terms.

``search.name_tokens``, ``search.description_words``, ``search.modalities``
    The unexpanded lists, for those candidate checks and for recomputing the terms when the
    study's modalities change (settling a series, :func:`with_modalities`).
``search.date``, ``search.time``
    ``YYYYMMDD`` and ``HHMMSS[.ffffff]``, or empty, for display, for matching and for clients
    that want them. Legacy forms found in older files (ACR-NEMA style ``YYYY.MM.DD`` dates,
    ``HH:MM:SS`` times: :func:`normal_date`, :func:`normal_time`) are normalised here and in
    ``search.sort``, so date ranges find them; the study document keeps the original value.

The ``|`` and ``:`` separators cannot occur inside a term's value: tokens are split at every
non-alphanumeric character, and modality codes are DICOM code strings (letters, digits,
underscore).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

MAX_PREFIX = 16
NO_DATE = "00000000"
NAME, MODALITY, WORD = "n", "m", "w"
_SPLIT = re.compile(r"[\W_]+")
_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
_DATE = re.compile(r"^\d{8}$")
_LEGACY_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")
_TIME = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_LEGACY_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?$")


def fold(text: str) -> str:
    """Casefold and strip accents (``Müller`` → ``muller``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped).casefold()


def split_words(text: str | None) -> list[str]:
    """Folded words of ``text`` in order (split at every non-alphanumeric character)."""
    return [t for t in _SPLIT.split(fold(text or "")) if t]


def name_tokens(person_name: str | None) -> list[str]:
    """Tokens of every component of a DICOM name (``^`` and ``=`` separate components and
    representations), folded."""
    return sorted(set(split_words(person_name)))


def prefixes(tokens: Iterable[str], max_len: int = MAX_PREFIX) -> list[str]:
    out = set()
    for token in tokens:
        for end in range(1, min(len(token), max_len) + 1):
            out.add(token[:end])
    return sorted(out)


def words(text: str | None) -> list[str]:
    """Folded description words of two characters or more (single letters are noise)."""
    return sorted({w for w in split_words(text) if len(w) > 1})


def modality_code(value: Any) -> str | None:
    """A modality as stored and searched (``ct`` → ``CT``), or None when not a DICOM code."""
    code = str(value or "").strip().upper()
    return code if _MODALITY.fullmatch(code) else None


def modality_codes(values: Iterable[Any] | None) -> list[str]:
    return sorted({c for c in (modality_code(v) for v in values or ()) if c})


def normal_date(value: Any) -> str:
    """A DA value as ``YYYYMMDD`` (``YYYYMMDD`` itself, or the legacy ``YYYY.MM.DD``), or
    ``""`` when it is neither."""
    text = str(value or "").strip()
    legacy = _LEGACY_DATE.fullmatch(text)
    date = "".join(legacy.groups()) if legacy else text
    return date if _DATE.fullmatch(date) else ""


def normal_time(value: Any) -> str:
    """A TM value as ``HH[MM[SS[.ffffff]]]`` (the legacy ``HH:MM[:SS[.ffffff]]`` rewritten
    without colons), or ``""`` when it is neither or out of range."""
    text = str(value or "").strip()
    legacy = _LEGACY_TIME.fullmatch(text)
    if legacy:
        text = "".join(g or "" for g in legacy.groups())
    parts = _TIME.fullmatch(text)
    if not parts:
        return ""
    hh, mm, ss = (int(g) if g else 0 for g in parts.groups()[:3])
    if hh > 23 or mm > 59 or ss > 60:
        return ""
    return text


def sortable_date(study_date: str | None, study_time: str | None = None) -> str:
    """``YYYYMMDD`` plus ``HHMMSS`` when known, sortable as a string; empty dates sort last
    in a descending list. Legacy forms are normalised (:func:`normal_date`)."""
    date = normal_date(study_date)
    if not date:
        return NO_DATE
    time = normal_time(study_time)[:6].ljust(6, "0")
    return date + time


def term(kind: str, value: str) -> str:
    """One namespaced term (``n:mul``, ``m:CT``, ``w:chest``)."""
    return f"{kind}:{value}"


def combine(*terms: str) -> str:
    """The stored form of two terms required together (give them in the order n, m, w)."""
    return "|".join(terms)


def study_terms(tokens: Iterable[str], modalities: Iterable[str],
                description_words: Iterable[str]) -> list[str]:
    """Every term of a study: singles and pairs (see the module docstring)."""
    names = [term(NAME, p) for p in prefixes(tokens)]
    mods = [term(MODALITY, m) for m in modalities]
    ws = [term(WORD, w) for w in description_words]
    out = set(names) | set(mods) | set(ws)
    for first, second in ((names, mods), (names, ws), (mods, ws)):
        out.update(combine(a, b) for a in first for b in second)
    return sorted(out)


def study_search_keys(fields: dict[str, Any],
                      modalities: Iterable[Any] | None = None) -> dict[str, Any]:
    """The ``search`` map of a study document, from its DICOM fields (and its modalities,
    known once its series are settled)."""
    tokens = name_tokens(fields.get("PatientName"))
    description = words(fields.get("StudyDescription"))
    mods = modality_codes(modalities)
    return {
        "name_tokens": tokens,
        "description_words": description,
        "modalities": mods,
        "patient_id": fold(str(fields.get("PatientID") or "")).strip(),
        "accession": fold(str(fields.get("AccessionNumber") or "")).strip(),
        "date": normal_date(fields.get("StudyDate")),
        "time": normal_time(fields.get("StudyTime")),
        "sort": sortable_date(fields.get("StudyDate"), fields.get("StudyTime")),
        "terms": study_terms(tokens, mods, description),
    }


def with_modalities(search: dict[str, Any], modalities: Iterable[Any]) -> dict[str, Any]:
    """``search`` with new modalities and the terms recomputed for them."""
    mods = modality_codes(modalities)
    tokens = list(search.get("name_tokens") or [])
    description = list(search.get("description_words") or [])
    return {**search, "modalities": mods, "terms": study_terms(tokens, mods, description)}
