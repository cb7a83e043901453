"""Every query the search and the study deletion build is served by ``firestore.indexes.json``.

The emulator runs any query without an index, so this is where a missing composite index
shows: the shapes come from the real query objects (their protobuf), built for every
combination of filters, never from a list kept by hand. The check itself:
``tests/index_shapes.py``.
"""

from __future__ import annotations

import itertools

from google.cloud import firestore
from pacs.studies import deletion
from pacs.studies import query as search_query

from tests.index_shapes import Shape, index_serves, problem, shape_of

NAMES = (None, "mul", "Müller Jürgen", "abcdefghijklmnopqrstuvwxyz")
PATIENT_IDS = (None, "PID-1")
ACCESSIONS = (None, "ACC9")
MODALITIES = (None, "CT")
KEYWORDS = (None, "chest", "chest abdomen")
DATES = ({}, {"date": "20240101"}, {"date_from": "20200101"}, {"date_to": "20201231"},
         {"date_from": "2020-01-01", "date_to": "2021-12-31"}, {"date": "20200101-"})


def all_filter_combinations() -> list[dict[str, str]]:
    out = []
    for name, pid, acc, mod, kw, dates in itertools.product(NAMES, PATIENT_IDS, ACCESSIONS,
                                                            MODALITIES, KEYWORDS, DATES):
        raw = {"name": name, "patient_id": pid, "accession": acc, "modality": mod,
               "keyword": kw, **dates}
        out.append({k: v for k, v in raw.items() if v is not None})
    return out


def search_shapes(client: firestore.Client) -> dict[Shape, dict[str, str]]:
    shapes: dict[Shape, dict[str, str]] = {}
    for filters in all_filter_combinations():
        query = search_query.build_query(client, "uid-1", filters)
        shapes.setdefault(shape_of(query), filters)
        # The page query: projection, cursor and limit do not change the shape.
        paged = query.select(["owner"]).start_after(["20240101000000", "a" * 32]).limit(5)
        assert shape_of(paged) == shape_of(query)
    return shapes


def test_shape_is_read_from_the_query_object(client):
    query = search_query.build_query(client, "u", {"name": "mul", "modality": "ct",
                                                   "patient_id": "p", "date_from": "20200101"})
    assert shape_of(query) == Shape(
        "studies", "COLLECTION", frozenset({"owner", "search.patient_id"}),
        frozenset({"search.terms"}), (("search.sort", "DESCENDING"),))


def test_every_search_query_has_its_index(client, spec):
    shapes = search_shapes(client)
    missing = {shape: filters for shape, filters in shapes.items() if problem(spec, shape)}
    assert not missing, "queries without an index in firestore.indexes.json:\n" + "\n".join(
        f"  {shape} (e.g. filters {filters})" for shape, filters in missing.items())
    assert len(shapes) == 8  # {patient_id, accession, terms} subsets, sort in every one


def test_every_deletion_query_has_its_index(client, spec):
    for query in deletion.queries(client, "uid-1", "a" * 32):
        shape = shape_of(query)
        assert problem(spec, shape) is None, f"no index for {shape}"


def test_every_studies_index_is_used(client, spec):
    shapes = search_shapes(client)
    for index in spec["indexes"]:
        if index["collectionGroup"] == "studies":
            assert any(index_serves(index, s) for s in shapes), f"unused index {index}"


def test_the_check_fails_when_an_index_is_missing(client, spec):
    shapes = search_shapes(client)
    deletion_shapes = [shape_of(q) for q in deletion.queries(client, "u", "a" * 32)]
    ours = [i for i in spec["indexes"] if i["collectionGroup"] in ("studies", "files")]
    assert len(ours) == 9
    for index in ours:
        without = {**spec, "indexes": [i for i in spec["indexes"] if i is not index]}
        assert any(problem(without, s) for s in list(shapes) + deletion_shapes), index


def test_the_check_fails_when_single_field_indexes_are_turned_off(client, spec):
    # search.terms has no single-field index (composite ones only): a query served by
    # single-field indexes alone must not rely on it.
    query = client.collection("studies").where(
        filter=firestore.FieldFilter("search.terms", "array_contains", "n:mul"))
    assert problem(spec, shape_of(query)) is not None
    plain = client.collection("studies").where(filter=firestore.FieldFilter("owner", "==", "u"))
    assert problem(spec, shape_of(plain)) is None
