"""Fixtures shared by unit test modules: the uploader's fake Cloud Storage and backoff
without waiting (``tests/uploader_helpers.py``), and the index file with an offline
Firestore client for the index checks (``tests/index_shapes.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import firestore
from pacs_cli import uploader

from tests.index_shapes import load_index_file, offline_firestore_client
from tests.uploader_helpers import FakeGCS

# --- The uploader ------------------------------------------------------------------------------

@pytest.fixture
def gcs():
    """A running ``FakeGCS``, closed after the test."""
    fake = FakeGCS()
    yield fake
    fake.close()


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    """Backoff without waiting; the delays asked for are recorded."""
    delays: list[float] = []
    monkeypatch.setattr(uploader, "_sleep", delays.append)
    return delays


# --- The index checks ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """``firestore.indexes.json``, parsed, for the index checks."""
    return load_index_file()


@pytest.fixture(scope="module")
def client() -> firestore.Client:
    """A Firestore client that only builds queries, for the index checks' shapes."""
    return offline_firestore_client()
