"""Issue 14, item 1, in pure code: who started an erasure (a user only with a recent sign-in,
a job or an operator by name), checked again by ``erasure.start``, and shown on the receipt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from pacs.auth import Caller
from pacs.errors import Forbidden
from pacs.privacy import erasure
from pacs.settings import Settings

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
