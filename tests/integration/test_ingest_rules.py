"""Rules matrix for the ingest collections: unauthenticated, owner and another user, for
reads of single documents and owner-filtered queries; no client writes at all."""

from __future__ import annotations

import uuid

import pytest
import requests

pytestmark = pytest.mark.localcloud

PATHS = {
    "uploads": "uploads/{u}",
    "files": "uploads/{u}/files/000000",
    "studies": "studies/{s}",
    "series": "studies/{s}/series/{r}",
    "instances": "studies/{s}/series/{r}/instances/{i}",
}


@pytest.fixture
def seeded(clean_firestore):
    cloud = clean_firestore
    owner, other = cloud.create_user(), cloud.create_user()
    ids = {"u": uuid.uuid4().hex, "s": uuid.uuid4().hex, "r": uuid.uuid4().hex, "i": uuid.uuid4().hex}
    fs = cloud.clients().firestore
    for path in PATHS.values():
        fs.document(path.format(**ids)).set({"owner": owner.uid, "marker": "x"})
    return cloud, owner, other, ids


@pytest.mark.parametrize("collection", sorted(PATHS))
def test_document_reads(seeded, collection):
    cloud, owner, other, ids = seeded
    path = PATHS[collection].format(**ids)
    assert cloud.firestore_rest(path, None).status_code == 403
    assert cloud.firestore_rest(path, other.id_token).status_code == 403
    assert cloud.firestore_rest(path, owner.id_token).status_code == 200


@pytest.mark.parametrize("collection", sorted(PATHS))
def test_client_writes_are_refused_even_for_the_owner(seeded, collection):
    cloud, owner, _, ids = seeded
    path = PATHS[collection].format(**ids)
    url = (f"http://{cloud.env['FIRESTORE_EMULATOR_HOST']}/v1/projects/{cloud.project}"
           f"/databases/(default)/documents/{path}")
    resp = requests.patch(url, json={"fields": {"owner": {"stringValue": owner.uid}}},
                          headers={"Authorization": f"Bearer {owner.id_token}"}, timeout=10)
    assert resp.status_code == 403
    resp = requests.delete(url, headers={"Authorization": f"Bearer {owner.id_token}"}, timeout=10)
    assert resp.status_code == 403


def _owner_query(collection: str, uid: str, all_descendants: bool = False) -> dict:
    return {"from": [{"collectionId": collection, "allDescendants": all_descendants}],
            "where": {"fieldFilter": {"field": {"fieldPath": "owner"}, "op": "EQUAL",
                                      "value": {"stringValue": uid}}}}


def test_owner_filtered_queries_allowed_unfiltered_refused(seeded):
    cloud, owner, other, ids = seeded
    ok = cloud.firestore_query("", _owner_query("studies", owner.uid), owner.id_token)
    assert ok.status_code == 200 and sum(1 for r in ok.json() if "document" in r) == 1
    # Another user asking for the owner's documents is refused, as is an unfiltered list.
    assert cloud.firestore_query("", _owner_query("studies", owner.uid), other.id_token).status_code == 403
    unfiltered = {"from": [{"collectionId": "studies"}]}
    assert cloud.firestore_query("", unfiltered, owner.id_token).status_code == 403
    files = cloud.firestore_query(f"uploads/{ids['u']}", _owner_query("files", owner.uid),
                                  owner.id_token)
    assert files.status_code == 200
