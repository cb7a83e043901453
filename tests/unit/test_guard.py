"""The production guard: emulator variables are never honoured when deployed."""

import pytest
from pacs.guard import UnsafeEnvironment, assert_safe_environment


@pytest.mark.parametrize("env", [
    {"K_SERVICE": "studies", "GOOGLE_CLOUD_PROJECT": "demo-pacs",
     "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"},
    {"GOOGLE_CLOUD_PROJECT": "clinic-prod", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"},
    {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9023"},  # no project at all: not demo-
])
def test_refuses_deployed_with_emulator_variables(env):
    with pytest.raises(UnsafeEnvironment, match="refusing to start"):
        assert_safe_environment(env)


@pytest.mark.parametrize("env", [
    {"GOOGLE_CLOUD_PROJECT": "demo-pacs", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"},
    # Deployed: the hash key is required (tests/unit/test_settings_secrets.py).
    {"K_SERVICE": "studies", "GOOGLE_CLOUD_PROJECT": "clinic-prod", "PACS_HASH_KEY": "k" * 32},
    {"K_SERVICE": "studies", "FIRESTORE_EMULATOR_HOST": "", "PACS_HASH_KEY": "k" * 32},
])
def test_allows_local_emulators_and_clean_deploys(env):
    assert_safe_environment(env)
