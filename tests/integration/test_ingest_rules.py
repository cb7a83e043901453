"""Rules matrix for the ingest collections: unauthenticated, owner and another user, for
reads of single documents and owner-filtered queries; no client writes at all."""

from __future__ import annotations

import pytest

from tests.rules_matrix import (
    assert_owner_reads_only,
    assert_queries,
    assert_writes_denied,
    owner_query,
    seed_matrix,
    unfiltered_query,
)

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
    return seed_matrix(clean_firestore, PATHS.values(), keys=("u", "s", "r", "i"))


@pytest.mark.parametrize("collection", sorted(PATHS))
def test_document_reads(seeded, collection):
    path = seeded.path(PATHS[collection])
    assert_owner_reads_only(seeded.cloud, path, seeded.owner, seeded.other)


@pytest.mark.parametrize("collection", sorted(PATHS))
def test_client_writes_are_refused_even_for_the_owner(seeded, collection):
    owner = seeded.owner
    assert_writes_denied(seeded.cloud, seeded.path(PATHS[collection]), (owner,),
                         {"owner": {"stringValue": owner.uid}})


def test_owner_filtered_queries_allowed_unfiltered_refused(seeded):
    cloud, owner, other = seeded.cloud, seeded.owner, seeded.other
    # The owner's own query is answered; another user asking for the owner's documents is
    # refused, as is an unfiltered list.
    found = assert_queries(cloud, owner_query("studies", owner.uid), allowed=(owner,),
                           denied=(other,))
    assert len(found) == 1
    assert_queries(cloud, unfiltered_query("studies"), denied=(owner,))
    assert_queries(cloud, owner_query("files", owner.uid), allowed=(owner,),
                   parent=seeded.path("uploads/{u}"))
