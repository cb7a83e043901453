"""Which of the caller's studies a QIDO-RS query matches, and the bounded, paged scan that
finds them.

A query becomes two parts (:func:`study_match`):

* the :class:`~pacs.studies.filters.Filters` of our own search, which the Firestore indexes
  answer (``owner ==``, folded PatientID and AccessionNumber, one name/modality/word term,
  a StudyDate range on ``search.sort``): they give the candidates, newest first;
* a check of each candidate for what the index cannot express: whole names, wildcards
  anywhere, StudyDescription as a whole, StudyTime, several modalities.

Literal values and the text before a first wildcard still narrow the candidates through the
index (``Doe^Pe*`` asks for the name prefixes ``doe`` and ``pe``); a value starting with a
wildcard (``*eter*``, as OHIF sends) cannot, and the scan reads the caller's studies in
pages of :data:`PAGE` until the page of answers is full or :data:`SCAN_BUDGET` documents
were read or :data:`SCAN_SECONDS` have passed (then the answer says it was cut short).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pacs import ids
from pacs.dicomweb import matching
from pacs.errors import BadRequest
from pacs.indexing import catalog, search_keys
from pacs.studies.filters import MAX_WORDS, Filters
from pacs.studies.query import build_query

SCAN_BUDGET = 5000
SCAN_SECONDS = 20.0
PAGE = 500
READ_FIELDS = [*catalog.STUDY_FIELDS, "owner", "modalities", "series_count", "instance_count",
               "search.sort", "search.name_tokens", "search.description_words",
               "search.modalities", "search.patient_id", "search.accession"]
_ENDS_IN_SEPARATOR = re.compile(r"[\W_]$")

Doc = Mapping[str, Any]


@dataclass
class StudyMatch:
    """The index part and the candidate check of a study-level query."""

    filters: Filters
    checks: list[Callable[[Doc], bool]] = field(default_factory=list)
    study_uids: tuple[str, ...] = ()

    @property
    def scans(self) -> bool:
        """Whether candidates are checked (so more may be read than are answered)."""
        return bool(self.checks) or self.filters.needs_check

    def matches(self, uid: str, doc: Doc) -> bool:
        """Whether a study document is the caller's and meets every key (named
        StudyInstanceUIDs included, however the document was found)."""
        return (doc.get("owner") == uid
                and (not self.study_uids or doc.get("StudyInstanceUID") in self.study_uids)
                and self.filters.matches(doc.get("search") or {})
                and all(check(doc) for check in self.checks))


@dataclass
class ScanState:
    """How much a scan read, and whether it stopped at its budget (documents, or
    :data:`SCAN_SECONDS` of time: the answer must leave within the request's 60 s)."""

    scanned: int = 0
    truncated: bool = False
    deadline: float = field(default_factory=lambda: time.monotonic() + SCAN_SECONDS)

    def out_of_time(self) -> bool:
        if time.monotonic() > self.deadline:
            self.truncated = True
        return self.truncated


def _words(text: str, limit: int = MAX_WORDS) -> str:
    return " ".join(search_keys.split_words(text)[:limit])


def _field(keyword: str) -> Callable[[Doc], Any]:
    return lambda doc: doc.get(keyword)


def study_match(matches: Mapping[str, str], fuzzy: bool = False,
                modalities: tuple[str, ...] = (), study_uids: tuple[str, ...] = (),
                also_modality: str | None = None) -> StudyMatch:
    """The :class:`StudyMatch` of checked query values (keyword → value).

    ``modalities`` are the ModalitiesInStudy values, ``also_modality`` a series Modality the
    study must contain too (root series and instance searches narrow by it).
    """
    raw: dict[str, str] = {}
    checks: list[Callable[[Doc], bool]] = []

    def text(keyword: str, filter_key: str | None, person: bool = False) -> None:
        value = matches.get(keyword)
        if not value:
            return
        get = _field(keyword)
        if person and fuzzy and not matching.has_wildcard(value):
            if not matching.fuzzy_words(value):
                raise matching.refuse("PatientName needs a letter or digit", code="bad_value")
            raw["name"] = _words(value)
            pred = matching.fuzzy_predicate(value)
            checks.append(lambda doc: pred(get(doc)))
            return
        pred = matching.text_predicate(value, person_name=person)
        checks.append(lambda doc: pred(get(doc)))
        if filter_key is None:
            return
        prefix = matching.literal_prefix(value)
        literal = prefix == value
        if person or filter_key == "keyword":
            words = search_keys.split_words(prefix)
            if filter_key == "keyword":
                # Only whole words narrow by the description index.
                if not literal and not _ENDS_IN_SEPARATOR.search(prefix):
                    words = words[:-1]
                words = [w for w in words if len(w) > 1]
            if words:
                raw[filter_key] = " ".join(words[:MAX_WORDS])
        elif literal:
            raw[filter_key] = value

    text("PatientName", "name", person=True)
    text("PatientID", "patient_id")
    text("AccessionNumber", "accession")
    text("StudyDescription", "keyword")
    if matches.get("StudyDate"):
        low, high = matching.date_range(matches["StudyDate"])
        raw.update({k: v for k, v in (("date_from", low), ("date_to", high)) if v})
    if matches.get("StudyTime"):
        times = matching.time_range(matches["StudyTime"])
        checks.append(lambda doc: times.contains(matching.stored_time(doc.get("StudyTime"))))
    codes = [search_keys.modality_code(m) for m in modalities]
    if any(c is None for c in codes):
        raise matching.refuse("ModalitiesInStudy must be modality codes such as CT or MR",
                              code="bad_value")
    wanted_codes = set(codes)
    if len(codes) == 1:
        raw["modality"] = codes[0]
    elif codes:
        checks.append(lambda doc: bool(wanted_codes & set(
            (doc.get("search") or {}).get("modalities") or [])))
    if also_modality:
        code = search_keys.modality_code(also_modality)
        if code is None:
            raise matching.refuse("Modality must be a modality code such as CT or MR",
                                  code="bad_value")
        if "modality" not in raw:
            raw["modality"] = code
        else:
            checks.append(lambda doc: code in ((doc.get("search") or {}).get("modalities")
                                               or []))
    try:
        filters = Filters.parse(raw)
    except BadRequest as err:
        raise BadRequest(f"bad query value: {err}", code=err.code) from None
    return StudyMatch(filters, checks, study_uids)


def sort_key(item: tuple[str, Doc]) -> tuple[str, str]:
    """Newest first when sorted in reverse: (search.sort, document id)."""
    return (str((item[1].get("search") or {}).get("sort") or ""), item[0])


def studies(firestore: Any, hash_key: bytes, uid: str, match: StudyMatch, state: ScanState,
            wanted: int | None = None) -> Iterator[tuple[str, Doc]]:
    """The caller's matching studies (key, document), newest first.

    Named StudyInstanceUIDs are read by their keyed ids (no query). Otherwise the search
    query is read in pages; when candidates are checked, at most :data:`SCAN_BUDGET`
    documents are read, and ``state.truncated`` is set if the scan stopped there. ``wanted``
    (the caller stops after that many) sizes the pages of an unchecked query.
    """
    if match.study_uids:
        refs = [catalog.study_ref(firestore, ids.study_key(hash_key, uid, u))
                for u in match.study_uids]
        found = [(s.id, s.to_dict() or {}) for s in firestore.get_all(refs) if s.exists]
        state.scanned += len(found)
        yield from sorted(((k, d) for k, d in found if match.matches(uid, d)), key=sort_key,
                          reverse=True)
        return
    base = build_query(firestore, uid, match.filters).select(READ_FIELDS)
    last = None
    while True:
        if match.scans:
            size = min(PAGE, SCAN_BUDGET - state.scanned)
        else:
            size = min(PAGE, wanted) if wanted else PAGE
        if size <= 0:
            state.truncated = True
            return
        if last is not None and state.out_of_time():
            return
        query = base.limit(size)
        if last is not None:
            query = query.start_after(last)
        snaps = list(query.stream())
        state.scanned += len(snaps)
        for snap in snaps:
            doc = snap.to_dict() or {}
            if match.matches(uid, doc):
                yield snap.id, doc
        if len(snaps) < size:
            return
        last = snaps[-1]
