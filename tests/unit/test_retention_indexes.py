"""Every query the retention jobs run is served by ``firestore.indexes.json``.

The shapes come from the real query objects (``shape_of`` of ``tests/index_shapes.py``). A
collection-group query on one field needs that field's collection-group single-field
index, which the file declares as a field override.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore
from pacs.retention import links, logs, reconcile, runner, trends, uploads

from tests.index_shapes import Shape, problem, shape_of

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def collection_group_field_served(spec: dict[str, Any], shape: Shape) -> bool:
    """A collection-group query on one field: a field override must add that field's
    collection-group index in the order the query needs."""
    [path] = shape.fields()
    wanted = shape.orders[0][1] if shape.orders else None
    for override in spec.get("fieldOverrides", []):
        if override["collectionGroup"] != shape.collection or override["fieldPath"] != path:
            continue
        for index in override.get("indexes", []):
            if index.get("queryScope") == "COLLECTION_GROUP" and index.get("order") and (
                    wanted is None or index["order"] == wanted):
                return True
    return False


def served(spec: dict[str, Any], shape: Shape) -> bool:
    if shape.scope == "COLLECTION_GROUP" and len(shape.fields()) == 1:
        return collection_group_field_served(spec, shape)
    return problem(spec, shape) is None


def retention_queries(client: firestore.Client) -> list[Any]:
    return (runner.queries(client) + links.queries(client, NOW) + logs.queries(client, NOW)
            + uploads.queries(client, NOW) + reconcile.queries(client)
            + trends.queries(client, NOW))


def test_every_retention_query_has_its_index(client, spec):
    missing = [shape_of(q) for q in retention_queries(client) if not served(spec, shape_of(q))]
    assert not missing, f"queries without an index: {missing}"


def test_the_check_fails_without_the_retention_indexes(client, spec):
    ours = [i for i in spec["indexes"]
            if (i["collectionGroup"], [f["fieldPath"] for f in i["fields"]]) in (
                ("uploads", ["status", "created_at"]), ("uploads", ["status", "updated_at"]),
                ("retention_runs", ["job", "started_at"]))]
    assert len(ours) == 3
    shapes = [shape_of(q) for q in retention_queries(client)]
    for index in ours:
        without = {**spec, "indexes": [i for i in spec["indexes"] if i is not index]}
        assert any(not served(without, s) for s in shapes), index
    no_override = {**spec, "fieldOverrides": [
        o for o in spec["fieldOverrides"]
        if (o["collectionGroup"], o["fieldPath"]) != ("instances", "object")]}
    assert any(not served(no_override, s) for s in shapes)


def test_paging_does_not_change_the_shape(client):
    query = uploads.stale_query(client, "pending", "created_at", NOW)
    assert shape_of(query.limit(3).start_after({"created_at": NOW})) == shape_of(query)
