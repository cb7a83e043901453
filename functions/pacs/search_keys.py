"""Normalized search keys stored on each study: case- and accent-folded name tokens (with
their prefixes, for prefix search under Firestore's equality/array filters), a sortable
date, and folded description words."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable

MAX_PREFIX = 16
_SPLIT = re.compile(r"[\s^=,.\-'/]+")


def fold(text: str) -> str:
    """Casefold and strip accents (``Müller`` → ``muller``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def name_tokens(person_name: str | None) -> list[str]:
    """Tokens of every component of a DICOM name (``^`` and ``=`` separate components and
    representations), folded."""
    if not person_name:
        return []
    return sorted({t for t in _SPLIT.split(fold(person_name)) if t})


def prefixes(tokens: Iterable[str], max_len: int = MAX_PREFIX) -> list[str]:
    out = set()
    for token in tokens:
        for end in range(1, min(len(token), max_len) + 1):
            out.add(token[:end])
    return sorted(out)


def words(text: str | None) -> list[str]:
    return sorted({w for w in _SPLIT.split(fold(text or "")) if len(w) > 1})


def sortable_date(study_date: str | None, study_time: str | None = None) -> str:
    """``YYYYMMDD`` plus ``HHMMSS`` when known, sortable as a string; empty dates sort last
    in a descending list."""
    date = (study_date or "").strip()
    if not re.fullmatch(r"\d{8}", date):
        return "00000000"
    time = re.sub(r"[^0-9]", "", (study_time or ""))[:6].ljust(6, "0")
    return date + time


def study_search_keys(fields: dict[str, Any]) -> dict[str, Any]:
    tokens = name_tokens(fields.get("PatientName"))
    return {
        "name_tokens": tokens,
        "name_prefixes": prefixes(tokens),
        "patient_id": fold(str(fields.get("PatientID") or "")).strip(),
        "accession": fold(str(fields.get("AccessionNumber") or "")).strip(),
        "description_words": words(fields.get("StudyDescription")),
        "date": (fields.get("StudyDate") or "").strip() if re.fullmatch(
            r"\d{8}", (fields.get("StudyDate") or "").strip()) else "",
        "sort": sortable_date(fields.get("StudyDate"), fields.get("StudyTime")),
    }
