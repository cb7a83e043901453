"""Issue 14, items 1 and 7, in pure code: who started an erasure (a user only with a recent
sign-in, a job or an operator by name), the lifetime of an export's download link, what the
owner sees of an export's result (never a link, also for requests stored by older
versions), and the download route."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from pacs.auth import Caller
from pacs.errors import Forbidden
from pacs.privacy import erasure, export
from pacs.privacy import requests as privacy_requests
from pacs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def settings(**env: str) -> Settings:
    return Settings.from_env({"GOOGLE_CLOUD_PROJECT": "demo-unit", **env})


def caller(age_seconds: int) -> Caller:
    return Caller("u1", {"auth_time": int(NOW.timestamp()) - age_seconds})


def test_a_user_starts_an_erasure_only_with_a_recent_sign_in():
    started = erasure.StartedBy.user(caller(299), settings(), NOW)
    assert started.record() == {"by": "user",
                                "verified_sign_in_at": NOW - timedelta(seconds=299)}
    with pytest.raises(Forbidden) as refused:
        erasure.StartedBy.user(caller(301), settings(), NOW)
    assert refused.value.code == "recent_sign_in_required"
    with pytest.raises(Forbidden):
        erasure.StartedBy.user(Caller("u1", {}), settings(), NOW)


def test_start_refuses_a_users_erasure_whose_sign_in_is_no_longer_recent():
    """``start`` checks again (the record may have been made earlier): nothing is touched."""
    started = erasure.StartedBy.user(caller(10), settings(), NOW)
    clients = SimpleNamespace(settings=settings(), firestore=None, publisher=None)
    with pytest.raises(Forbidden) as refused:
        erasure.start(clients, "u1", reason="user_request", now=NOW + timedelta(seconds=300),
                      started_by=started)
    assert refused.value.code == "recent_sign_in_required"
    forged = erasure.StartedBy("user")
    with pytest.raises(Forbidden):
        erasure.start(clients, "u1", reason="minor", now=NOW, started_by=forged)


def test_jobs_and_operators_are_recorded_by_name_and_why():
    assert erasure.StartedBy.job("minor_reports").record() == {"by": "job",
                                                               "name": "minor_reports"}
    assert erasure.StartedBy.operator("op-7", "ticket 123").record() == {
        "by": "operator", "name": "op-7", "note": "ticket 123"}
    for bad in (lambda: erasure.StartedBy.job(""), lambda: erasure.StartedBy.operator(" ", "x"),
                lambda: erasure.StartedBy("someone", name="x")):
        with pytest.raises(ValueError):
            bad()


def test_receipt_says_who_started_the_erasure():
    doc = {"status": "in_progress", "reason": "minor", "requested_at": NOW,
           "started_by": {"by": "user", "verified_sign_in_at": NOW}}
    receipt = erasure.public_receipt("f" * 32, doc)
    assert receipt["started_by"] == {"by": "user", "verified_sign_in_at": "2026-03-01T12:00:00Z"}


def test_download_link_lives_no_longer_than_a_recent_sign_in_nor_the_archive():
    later = NOW + timedelta(hours=1)
    assert export.download_link_seconds(settings(), NOW, later) == 300
    short_window = settings(PACS_RECENT_SIGNIN_SECONDS="120")
    assert export.download_link_seconds(short_window, NOW, later) == 120
    short_links = settings(PACS_LINK_TTL_SECONDS="60")
    assert export.download_link_seconds(short_links, NOW, later) == 60
    soon = NOW + timedelta(seconds=42, microseconds=500)
    assert export.download_link_seconds(settings(), NOW, soon) == 42


def test_the_owner_never_sees_a_link_also_of_requests_stored_by_older_versions():
    until = NOW + timedelta(hours=2)
    legacy = {"type": "export", "status": "completed",
              "result": {"object": "exports/u1/r1.zip", "generation": "7", "size": 10,
                         "download_url": "https://x/?X-Goog-Signature=ab", "expires_at": until}}
    shown = privacy_requests.public("r1", legacy, NOW)
    assert "download_url" not in shown["result"] and "expires_at" not in shown["result"]
    assert shown["result"]["available_until"] == "2026-03-01T14:00:00Z"
    assert shown["result"]["expired"] is False
    assert privacy_requests.public("r1", legacy, until)["result"]["expired"] is True


@pytest.fixture
def main(monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-unit")
    monkeypatch.delenv("K_SERVICE", raising=False)
    spec = importlib.util.spec_from_file_location(
        "privacy_requests_main", ROOT / "functions" / "privacy_requests" / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", ["/requests/abc123/download",
                                  "/api/privacy/requests/abc123/download"])
def test_download_route(main, path):
    assert main._route("POST", path) == ("request_download", "abc123")
