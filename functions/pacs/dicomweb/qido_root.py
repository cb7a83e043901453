"""QIDO-RS searches of all the caller's series (``/series``) and all their instances
(``/instances``), matching on study keys as well (PS3.18 §10.6.1, tables 10.6.3-3 to -5:
the answers carry the study's attributes, and an instance answer its series' too).

How they are found:

* ``SeriesInstanceUID`` / ``SOPInstanceUID`` given: a collection-group query
  (``owner ==`` and ``UID in``, at most :data:`IN_CHUNK` UIDs per query; composite indexes
  in ``firestore.indexes.json``), then the studies (and series) of what it found, read by
  their ids and checked against the study keys.
* Otherwise the matching studies, newest first (:func:`pacs.dicomweb.study_match.studies`;
  a ``Modality`` narrows them through the modality index), then each study's series in
  series-number order, then each series' instances in instance-number order, until
  ``offset + limit`` answers are found. At most :data:`READ_BUDGET` series and instance
  documents are read per request (besides the study scan's own budget), within the scan's
  :data:`~pacs.dicomweb.study_match.SCAN_SECONDS`; stopping there marks the answer as cut
  short.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pacs.dicomweb import attributes, qido, study_match
from pacs.indexing import catalog

READ_BUDGET = 20_000
IN_CHUNK = 30
SERIES_READ = ["SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
               "BodyPartExamined", "instance_count", "owner"]

Doc = Mapping[str, Any]


class _Budget:
    def __init__(self, state: study_match.ScanState) -> None:
        self.read = 0
        self.truncated = False
        self.state = state

    def take(self, docs: list[Any]) -> list[Any]:
        self.read += len(docs)
        return docs

    @property
    def spent(self) -> bool:
        if self.read >= READ_BUDGET or self.state.out_of_time():
            self.truncated = True
        return self.truncated


def _by_uids(firestore: Any, group: str, uid: str, field: str, values: tuple[str, ...],
             budget: _Budget) -> list[Any]:
    """Documents of a collection group with ``owner == uid`` and ``field in values``."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    out = []
    for at in range(0, len(values), IN_CHUNK):
        query = (firestore.collection_group(group)
                 .where(filter=FieldFilter("owner", "==", uid))
                 .where(filter=FieldFilter(field, "in", list(values[at:at + IN_CHUNK]))))
        out.extend(budget.take(list(query.stream())))
    return out


def uid_queries(firestore: Any, uid: str) -> list[Any]:
    """The collection-group query shapes used here (for the index check)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return [firestore.collection_group(group).where(filter=FieldFilter("owner", "==", uid))
            .where(filter=FieldFilter(field, "in", ["1.2"]))
            for group, field in (("series", "SeriesInstanceUID"),
                                 ("instances", "SOPInstanceUID"))]


def _study_of(ref: Any) -> str:
    """The study key of a series or instance document reference."""
    path = ref.path.split("/")
    return path[path.index("studies") + 1]


def _studies_by_key(firestore: Any, uid: str, keys: Iterable[str],
                    match: study_match.StudyMatch) -> dict[str, Doc]:
    refs = [catalog.study_ref(firestore, k) for k in dict.fromkeys(keys)]
    found = {s.id: s.to_dict() or {} for s in firestore.get_all(refs) if s.exists}
    return {k: d for k, d in found.items() if match.matches(uid, d)}


def _ordered(pairs: list[tuple[str, Doc, Doc]]) -> list[tuple[str, Doc, Doc]]:
    """(study key, study, item) in study order (newest first), then by the item's number."""
    by_study: dict[str, list[tuple[str, Doc, Doc]]] = {}
    for triple in pairs:
        by_study.setdefault(triple[0], []).append(triple)
    studies = sorted({k: t[0][1] for k, t in by_study.items()}.items(),
                     key=study_match.sort_key, reverse=True)
    out = []
    for key, _ in studies:
        out.extend(by_study[key])
    return out


class _Search:
    """One root search: the caller, the checked query and what it has read."""

    def __init__(self, firestore: Any, hash_key: bytes, uid: str, query: qido.Query) -> None:
        self.fs, self.key, self.uid, self.query = firestore, hash_key, uid, query
        self.match = qido.match_studies(query, also_modality=query.matches.get("Modality"))
        self.state = study_match.ScanState()
        self.budget = _Budget(self.state)

    @property
    def truncated(self) -> bool:
        return self.budget.truncated or self.state.truncated

    def series(self) -> Iterator[tuple[str, Doc, str, Doc]]:
        """(study key, study, series key, series) of every matching series, in answer
        order."""
        check = qido.series_check(self.query)
        series_uids = self.query.uids("SeriesInstanceUID")
        if series_uids:
            snaps = [s for s in _by_uids(self.fs, "series", self.uid, "SeriesInstanceUID",
                                         series_uids, self.budget)
                     if (s.to_dict() or {}).get("owner") == self.uid]
            studies = _studies_by_key(self.fs, self.uid,
                                      (_study_of(s.reference) for s in snaps), self.match)
            triples = sorted(((_study_of(s.reference), studies[_study_of(s.reference)], s)
                              for s in snaps if _study_of(s.reference) in studies),
                             key=lambda t: qido.series_order(t[2].to_dict() or {}))
            for key, study, snap in _ordered(triples):
                doc = snap.to_dict() or {}
                if check(doc):
                    yield key, study, snap.id, doc
            return
        for key, study in study_match.studies(self.fs, self.key, self.uid, self.match,
                                              self.state):
            if self.budget.spent:
                return
            series = self.budget.take([(s.id, s.to_dict() or {}) for s in catalog.study_ref(
                self.fs, key).collection("series").select(SERIES_READ).stream()])
            for series_key, doc in sorted(series, key=lambda p: qido.series_order(p[1])):
                if doc.get("owner") == self.uid and check(doc):
                    yield key, study, series_key, doc

    def instances(self) -> Iterator[tuple[Doc, Doc, Doc]]:
        """(study, series, instance) of every matching instance, in answer order."""
        check = qido.instance_check(self.query)
        sop_uids = self.query.uids("SOPInstanceUID")
        if sop_uids:
            yield from self._instances_by_uid(sop_uids, check)
            return
        for key, study, series_key, series in self.series():
            if self.budget.spent:
                return
            docs = self.budget.take([s.to_dict() or {} for s in catalog.series_ref(
                self.fs, key, series_key).collection("instances").stream()])
            for doc in sorted(docs, key=qido.instance_order):
                if doc.get("owner") == self.uid and check(doc):
                    yield study, series, doc

    def _instances_by_uid(self, sop_uids: tuple[str, ...], check: Any
                          ) -> Iterator[tuple[Doc, Doc, Doc]]:
        snaps = [s for s in _by_uids(self.fs, "instances", self.uid, "SOPInstanceUID",
                                     sop_uids, self.budget)
                 if (s.to_dict() or {}).get("owner") == self.uid]
        studies = _studies_by_key(self.fs, self.uid,
                                  (_study_of(s.reference) for s in snaps), self.match)
        series_check = qido.series_check(self.query)
        refs = {s.reference.parent.parent.path: s.reference.parent.parent for s in snaps
                if _study_of(s.reference) in studies}
        series = {s.reference.path: s.to_dict() or {}
                  for s in self.fs.get_all(list(refs.values())) if s.exists}
        triples = []
        for snap in snaps:
            parent = snap.reference.parent.parent.path
            doc = snap.to_dict() or {}
            if parent in series and series_check(series[parent]) and check(doc):
                triples.append((_study_of(snap.reference), studies[_study_of(snap.reference)],
                                (series[parent], doc)))
        triples.sort(key=lambda t: (qido.series_order(t[2][0]), qido.instance_order(t[2][1])))
        for _, study, (series_doc, doc) in _ordered(triples):
            yield study, series_doc, doc


def _page(items: Iterator[Any], query: qido.Query) -> list[Any]:
    wanted = query.offset + query.limit
    out = []
    for item in items:
        out.append(item)
        if len(out) == wanted:
            break
    return out[query.offset:]


def search_all_series(firestore: Any, hash_key: bytes, uid: str,
                      items: Iterable[tuple[str, str]], retrieve_base: str | None = None
                      ) -> tuple[list[dict[str, Any]], bool]:
    """All the caller's series matching study and series keys (``GET /series``): newest
    study first, then by series number; each answer holds the study attributes too.

    Returns
    -------
    (list of dict, bool)
        DICOM JSON objects, and whether a read budget cut the search short.
    """
    query = qido.parse_query(items, qido.STUDY_KEYS + qido.SERIES_KEYS,
                             attributes.HELD["study"] + attributes.HELD["series"])
    search = _Search(firestore, hash_key, uid, query)
    study_keys, series_keys = query.keywords("study"), query.keywords("series")
    out = []
    for _, study, _, series in _page(search.series(), query):
        study_uid, series_uid = study.get("StudyInstanceUID"), series.get("SeriesInstanceUID")
        out.append(attributes.answer([
            (study_keys, attributes.study_values(study, qido.study_url(retrieve_base,
                                                                       study_uid))),
            (series_keys, attributes.series_values(study_uid, series, qido.series_url(
                retrieve_base, study_uid, series_uid)))]))
    return out, search.truncated


def search_all_instances(firestore: Any, hash_key: bytes, uid: str,
                         items: Iterable[tuple[str, str]], retrieve_base: str | None = None
                         ) -> tuple[list[dict[str, Any]], bool]:
    """All the caller's instances matching study, series and instance keys
    (``GET /instances``), in study, series and instance order; each answer holds its study's
    and series' attributes too.

    Returns
    -------
    (list of dict, bool)
        DICOM JSON objects, and whether a read budget cut the search short.
    """
    query = qido.parse_query(
        items, qido.STUDY_KEYS + qido.SERIES_KEYS + qido.INSTANCE_KEYS,
        attributes.HELD["study"] + attributes.HELD["series"] + attributes.HELD["instance"])
    search = _Search(firestore, hash_key, uid, query)
    keywords = [query.keywords(level) for level in ("study", "series", "instance")]
    out = []
    for study, series, doc in _page(search.instances(), query):
        study_uid, series_uid = study.get("StudyInstanceUID"), series.get("SeriesInstanceUID")
        out.append(attributes.answer([
            (keywords[0], attributes.study_values(study)),
            (keywords[1], attributes.series_values(study_uid, series)),
            (keywords[2], attributes.instance_values(study_uid, series_uid, doc,
                                                     qido.instance_url(
                                                         retrieve_base, study_uid,
                                                         series_uid,
                                                         doc.get("SOPInstanceUID"))))]))
    return out, search.truncated
