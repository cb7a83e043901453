"""Every query the search and the study deletion build is served by ``firestore.indexes.json``.

The emulator runs any query without an index, so this is where a missing composite index
shows: the shapes come from the real query objects (their protobuf), built for every
combination of filters, never from a list kept by hand.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.types import StructuredQuery
from pacs.studies import deletion
from pacs.studies import query as search_query

INDEX_FILE = Path(__file__).resolve().parents[2] / "firestore.indexes.json"
EQUALITY_OPS = {"EQUAL", "IN"}
CONTAINS_OPS = {"ARRAY_CONTAINS", "ARRAY_CONTAINS_ANY"}
RANGE_OPS = {"LESS_THAN", "LESS_THAN_OR_EQUAL", "GREATER_THAN", "GREATER_THAN_OR_EQUAL",
             "NOT_EQUAL", "NOT_IN"}


@dataclass(frozen=True)
class Shape:
    """What decides the index a query needs."""

    collection: str
    scope: str
    equality: frozenset[str]
    contains: frozenset[str]
    orders: tuple[tuple[str, str], ...]

    def fields(self) -> set[str]:
        return set(self.equality) | set(self.contains) | {path for path, _ in self.orders}


def shape_of(query: Any) -> Shape:
    """The shape of a query object, read from the protobuf it sends."""
    pb = StructuredQuery.pb(query._to_protobuf())
    [selector] = pb.from_
    equality, contains, ranges = set(), set(), []

    def walk(node: Any) -> None:
        kind = node.WhichOneof("filter_type")
        if kind == "composite_filter":
            assert StructuredQuery.CompositeFilter.Operator(node.composite_filter.op).name == "AND"
            for sub in node.composite_filter.filters:
                walk(sub)
        elif kind == "field_filter":
            op = StructuredQuery.FieldFilter.Operator(node.field_filter.op).name
            path = node.field_filter.field.field_path
            if op in EQUALITY_OPS:
                equality.add(path)
            elif op in CONTAINS_OPS:
                contains.add(path)
            else:
                assert op in RANGE_OPS, op
                ranges.append(path)
        elif kind == "unary_filter":
            op = StructuredQuery.UnaryFilter.Operator(node.unary_filter.op).name
            path = node.unary_filter.field.field_path
            (ranges.append(path) if op.startswith("IS_NOT") else equality.add(path))

    if pb.HasField("where"):
        walk(pb.where)
    orders = [(o.field.field_path, StructuredQuery.Direction(o.direction).name)
              for o in pb.order_by]
    # Inequality fields are ordered first (ascending) when the query does not order them.
    ordered = {path for path, _ in orders}
    orders = [(path, "ASCENDING") for path in dict.fromkeys(ranges) if path not in ordered] + orders
    # The implicit last order is __name__ in the direction of the one before it.
    if orders and orders[-1][0] == "__name__":
        implicit = orders[-2][1] if len(orders) > 1 else "ASCENDING"
        if orders[-1][1] == implicit:
            orders.pop()
    return Shape(selector.collection_id,
                 "COLLECTION_GROUP" if selector.all_descendants else "COLLECTION",
                 frozenset(equality), frozenset(contains), tuple(orders))


def needs_composite(shape: Shape) -> bool:
    """Whether automatic single-field indexes cannot serve the shape."""
    if shape.scope == "COLLECTION_GROUP":
        return True  # automatic single-field indexes are collection-scoped
    if not shape.orders and not shape.contains:
        return False  # equalities only: Firestore merges single-field indexes
    return len(shape.fields()) > 1


def _index_fields(index: dict[str, Any]) -> list[tuple[str, str]]:
    fields = [(f["fieldPath"], f.get("order") or ("CONTAINS" if f.get("arrayConfig") else "?"))
              for f in index["fields"]]
    if len(fields) > 1 and fields[-1][0] == "__name__" and fields[-1][1] == fields[-2][1]:
        fields.pop()
    return fields


def index_serves(index: dict[str, Any], shape: Shape) -> bool:
    """Whether a composite index of the file serves the shape exactly: the equality and
    array-contains fields first (in any order), then the orders."""
    if index["collectionGroup"] != shape.collection or index.get(
            "queryScope", "COLLECTION") != shape.scope:
        return False
    fields = _index_fields(index)
    head_size = len(shape.equality) + len(shape.contains)
    head, tail = fields[:head_size], fields[head_size:]
    head_kinds = {(path, "contains" if mode == "CONTAINS" else "eq") for path, mode in head}
    wanted = {(p, "eq") for p in shape.equality} | {(p, "contains") for p in shape.contains}
    return len(head) == head_size and head_kinds == wanted and tuple(tail) == shape.orders


def exempted(spec: dict[str, Any], shape: Shape) -> set[str]:
    """Fields of the shape whose single-field indexes the file turns off."""
    return {o["fieldPath"] for o in spec.get("fieldOverrides", [])
            if o["collectionGroup"] == shape.collection and o.get("indexes") == []
            and o["fieldPath"] in shape.fields()}


def problem(spec: dict[str, Any], shape: Shape) -> str | None:
    """Why the file does not serve the shape, or None when it does."""
    if not needs_composite(shape):
        off = exempted(spec, shape)
        return f"single-field indexes turned off for {sorted(off)}" if off else None
    if any(index_serves(index, shape) for index in spec["indexes"]):
        return None
    return "no composite index"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(INDEX_FILE.read_text())


@pytest.fixture(scope="module")
def client() -> firestore.Client:
    return firestore.Client(project="demo-index-check", credentials=AnonymousCredentials())


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
