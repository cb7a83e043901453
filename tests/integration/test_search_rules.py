"""Search through the Firestore REST API as a web client under the security rules, over a
few hundred generated studies of several users: the owner's query (built by
``pacs.studies.query`` as the web client builds it) answers what the oracle expects; the
same query as another user or anonymous, or one without the owner filter, is refused.

The data set (the ``dataset`` fixture, one per module) and the oracle:
``tests/search_helpers.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.cloud.firestore_v1.types import StructuredQuery
from pacs.studies import query as search_query

from tests.rules_matrix import ANONYMOUS, assert_queries
from tests.search_helpers import oracle

pytestmark = pytest.mark.localcloud


def structured(query: Any) -> dict[str, Any]:
    """The client library's query as the structured query of the REST API."""
    return json.loads(StructuredQuery.to_json(query._to_protobuf(),
                                              use_integers_for_enums=False))


@pytest.mark.parametrize("filters", [{}, {"name": "mul", "modality": "CT"},
                                     {"patient_id": "pid-01", "date_from": "20180101"},
                                     {"accession": "ACC0002", "keyword": "chest"},
                                     {"date": "-20191231", "modality": "MR"}])
def test_web_client_runs_the_same_query_under_the_rules(cloud, dataset, filters):
    alice, bob = dataset.users["alice"], dataset.users["bob"]
    client = cloud.clients().firestore
    query = search_query.build_query(client, alice.uid, filters).limit(30)
    # The owner's query is answered; the same query as someone else, or with no owner
    # filter at all, is refused.
    found = assert_queries(cloud, structured(query), allowed=(alice,),
                           denied=(bob, ANONYMOUS))
    got = [document["name"].rsplit("/", 1)[1] for document in found]
    assert got == oracle(dataset, alice.uid, filters)[:30]
    unowned = client.collection("studies").order_by("search.sort").limit(5)
    assert_queries(cloud, structured(unowned), denied=(alice,))
