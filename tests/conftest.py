"""Shared fixtures: environment restore, and the local cloud for integration tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.localcloud_fixture import LocalCloud, start_test_cloud, stop_test_cloud


@pytest.fixture(autouse=True)
def restore_environ():
    """Every test leaves os.environ as it found it (functions-framework's own pattern)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def cloud() -> LocalCloud:
    """The local cloud under a project of this test session's own."""
    root = Path(tempfile.mkdtemp(prefix="pacs-test-"))
    saved = dict(os.environ)
    test_cloud = start_test_cloud(root)
    session_env = dict(os.environ)
    yield test_cloud
    stop_test_cloud(test_cloud)
    os.environ.clear()
    os.environ.update(saved)
    del session_env


@pytest.fixture
def cloud_env(cloud: LocalCloud):
    """Put the test project's variables in os.environ for this test (restored after)."""
    os.environ.update(cloud.env)
    return cloud


@pytest.fixture
def clean_firestore(cloud: LocalCloud):
    cloud.clear_firestore()
    yield cloud
