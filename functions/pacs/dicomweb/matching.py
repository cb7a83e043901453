"""QIDO-RS matching of one attribute value (PS3.4 C.2.2.2, PS3.18 §8.3.4): checked query
values become predicates over the stored study, series and instance documents.

* Text (``PatientName``, ``PatientID``, ``AccessionNumber``, ``StudyDescription``):
  literal (whole value), or with ``*`` (any run) and ``?`` (one character) anywhere. Always
  case- and accent-insensitive (:func:`pacs.indexing.search_keys.fold`). A person name is
  matched against the whole value and against each ``=``-separated representation, trailing
  empty components (``Doe^John^^``) ignored.
* ``fuzzymatching=true`` on a person name without wildcards: every word of the query begins
  some component of the name (``doe pet`` and ``Pe^Do`` find ``Doe^Peter``), which is the
  name index of our own search, so it needs no scan.
* Dates and times: a single value or a range ``a-b``, ``a-``, ``-b``, inclusive; legacy
  ``YYYY.MM.DD`` and ``HH:MM:SS`` accepted in queries as in files
  (:func:`~pacs.indexing.search_keys.normal_date`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pacs.errors import BadRequest
from pacs.indexing import search_keys

WILDCARDS = re.compile(r"[*?]")


def refuse(message: str, code: str = "unsupported_query") -> BadRequest:
    """The 400 of a query this service cannot answer, with its reason."""
    return BadRequest(message, code=code)


def has_wildcard(value: str) -> bool:
    return bool(WILDCARDS.search(value))


def literal_prefix(value: str) -> str:
    """What precedes the first wildcard."""
    found = WILDCARDS.search(value)
    return value[:found.start()] if found else value


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern`` (``*`` any run, ``?`` one character), in
    O(len(pattern) * len(text)) at worst: no regular expression, so no backtracking blow-up
    on patterns such as ``*a*a*a*a*b``."""
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, t, p + 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def _trim_name(value: str) -> str:
    return "=".join(group.rstrip("^ ") for group in value.split("="))


def text_predicate(value: str, person_name: bool = False) -> Callable[[Any], bool]:
    """Whether a stored text matches ``value`` (literal or with wildcards), folded."""
    if person_name:
        value = _trim_name(value) if not has_wildcard(value) else value
    pattern = search_keys.fold(value.strip())

    def candidates(stored: Any) -> list[str]:
        text = str(stored or "").strip()
        if not person_name:
            return [search_keys.fold(text)]
        trimmed = _trim_name(text)
        return [search_keys.fold(t) for t in (trimmed, *trimmed.split("=")) if t]

    return lambda stored: any(glob_match(pattern, c) for c in candidates(stored))


def fuzzy_words(value: str) -> tuple[str, ...]:
    """The folded words of a fuzzy person-name query (each must begin a name component)."""
    return tuple(dict.fromkeys(search_keys.split_words(value)))


def fuzzy_predicate(value: str) -> Callable[[Any], bool]:
    """Whether every word of ``value`` begins some component word of a stored name."""
    wanted = fuzzy_words(value)

    def check(stored: Any) -> bool:
        tokens = search_keys.name_tokens(str(stored or ""))
        return all(any(t.startswith(w) for t in tokens) for w in wanted)

    return check


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of normalised values; either may be open."""

    low: str | None
    high: str | None

    def contains(self, value: str) -> bool:
        return bool(value) and (self.low is None or value >= self.low) and (
            self.high is None or value <= self.high)


def _bounds(value: str, normal: Callable[[str], str], name: str) -> tuple[str, str]:
    if value.count("-") > 1:
        raise refuse(f"{name}: one value or one range a-b, a-, -b", code="bad_value")
    low, sep, high = (p.strip() for p in value.partition("-"))
    if not sep:
        high = low
    if not low and not high:
        raise refuse(f"{name}: a range needs at least one end", code="bad_value")
    out = []
    for part in (low, high):
        norm = normal(part) if part else ""
        if part and not norm:
            raise refuse(f"{name}: {part[:20]!r} is not a valid value", code="bad_value")
        out.append(norm)
    return out[0], out[1]


def _calendar_date(value: str) -> str:
    from datetime import datetime

    date = search_keys.normal_date(value)
    try:
        return datetime.strptime(date, "%Y%m%d").strftime("%Y%m%d") if date else ""
    except ValueError:
        return ""


def date_range(value: str) -> tuple[str | None, str | None]:
    """``YYYYMMDD`` bounds of a DA query value (single, ``a-b``, ``a-``, ``-b``)."""
    low, high = _bounds(value, _calendar_date, "StudyDate")
    if low and high and low > high:
        raise refuse("StudyDate: the range ends before it starts", code="bad_date_range")
    return low or None, high or None


def _time_key(value: str, upper: bool) -> str:
    """A normalised time as a comparable ``HHMMSS.ffffff``; an upper bound given to the
    minute or hour covers all of it (``-12`` ends at ``125959.999999``)."""
    whole, _, fraction = value.partition(".")
    pad = "9" if upper else "0"
    if upper and not fraction:
        whole = whole + "5959"[:6 - len(whole)] if len(whole) < 6 else whole
        fraction = "999999"
    return whole.ljust(6, pad) + "." + fraction.ljust(6, pad)


def time_range(value: str) -> Range:
    """Comparable bounds of a TM query value; times compare as ``HHMMSS.ffffff``."""
    low, high = _bounds(value, search_keys.normal_time, "StudyTime")
    bounds = Range(_time_key(low, False) if low else None,
                   _time_key(high, True) if high else None)
    if bounds.low and bounds.high and bounds.low > bounds.high:
        raise refuse("StudyTime: the range ends before it starts", code="bad_value")
    return bounds


def stored_time(value: Any) -> str:
    """A stored TM as ``HHMMSS.ffffff`` (legacy forms normalised), ``""`` when not a time."""
    norm = search_keys.normal_time(value)
    return _time_key(norm, False) if norm else ""
