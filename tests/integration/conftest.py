"""Fixtures shared by integration test modules on the local cloud: the privacy modules'
empty project, the viewer-link modules' owner and signing key, and the search modules'
generated studies (each module-scoped fixture is built once per module that uses it)."""

from __future__ import annotations

import pytest
from pacs.links import signing

from tests.localcloud_fixture import LocalCloud, User
from tests.privacy_helpers import clear_buckets, wipe
from tests.search_helpers import Dataset, seed_dataset
from tests.v4_verifier import public_key_of_key_file

# --- Viewer links: the signing key and an owner ---------------------------------------------

@pytest.fixture(scope="module")
def public_key(cloud: LocalCloud):
    """The public half of the local signing key, which every signed URL must verify with."""
    path = signing.ensure_local_key(cloud.env["PACS_SIGNING_KEY_FILE"], cloud.project)
    return public_key_of_key_file(path)


@pytest.fixture
def owner(cloud: LocalCloud) -> User:
    """A new user of the test project, the owner of what the test seeds."""
    return cloud.create_user()


# --- Privacy: a project left empty ---------------------------------------------------------

@pytest.fixture(scope="module")
def leave_project_empty(cloud: LocalCloud):
    """Wipe the test project after the module (``usefixtures`` in its ``pytestmark``): the
    privacy tests seed studies that are not real ingests (random instance keys), and tests
    that reconcile the whole project afterwards must not meet them."""
    yield
    wipe(cloud)


@pytest.fixture
def empty_cloud(cloud_env: LocalCloud, clean_firestore: LocalCloud) -> LocalCloud:
    """No document and no object in the test project: what the inventory checks need."""
    clear_buckets(cloud_env)
    return cloud_env


# --- Search: generated studies -------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(cloud: LocalCloud) -> Dataset:
    """A few hundred generated studies of four users (``tests/search_helpers.py``)."""
    return seed_dataset(cloud)
