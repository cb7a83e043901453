"""The index check shared by the index tests (``tests/unit/test_*_indexes.py``): the shape
of a query (collection, scope, equality, array-contains and order fields), read from the
protobuf the real query object sends, and whether ``firestore.indexes.json`` serves it.

The emulator runs any query without an index, so this is where a missing composite index
shows. The ``spec`` and ``client`` fixtures are in ``tests/unit/conftest.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.types import StructuredQuery

INDEX_FILE = Path(__file__).resolve().parents[1] / "firestore.indexes.json"
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


def load_index_file() -> dict[str, Any]:
    return json.loads(INDEX_FILE.read_text())


def offline_firestore_client() -> firestore.Client:
    """A client that only builds queries (no emulator, no credentials)."""
    return firestore.Client(project="demo-index-check", credentials=AnonymousCredentials())
