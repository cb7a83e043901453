"""The quota and rate queries of ``create_upload`` (``pacs.ingest.uploads.queries``) have
composite indexes that end with the summed field, ``size``: Firestore sums from index
entries, and the emulator runs any query without one, so this is where a missing index
shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.types import StructuredQuery
from pacs.ingest import uploads

INDEX_FILE = Path(__file__).resolve().parents[2] / "firestore.indexes.json"


def _filter_fields(query) -> list[str]:
    pb = StructuredQuery.pb(query._to_protobuf())
    return [f.field_filter.field.field_path for f in pb.where.composite_filter.filters]


def test_each_usage_query_has_an_index_ending_with_the_summed_size():
    spec = json.loads(INDEX_FILE.read_text())
    client = firestore.Client(project="demo-index-check", credentials=AnonymousCredentials())
    indexes = [[f["fieldPath"] for f in index["fields"]] for index in spec["indexes"]
               if index["collectionGroup"] == uploads.UPLOADS
               and index.get("queryScope") == "COLLECTION"]

    shapes = [_filter_fields(q) for q in uploads.queries(client, "u", datetime.now(UTC))]

    assert shapes == [["owner", "counts_toward_quota"], ["owner", "created_at"]]
    for fields in shapes:
        assert [*fields, "size"] in indexes, fields
