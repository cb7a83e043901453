"""Usage trends: what may be published of a day's counts (suppression of buckets covering
fewer than k users, pooling, withheld totals) and the labels that may appear at all."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pacs.errors import BadRequest
from pacs.retention import trends
from pacs.retention.trends import Tally, publishable

K = 5


def tally(rows: list[tuple[str, str, int]], k: int = K) -> Tally:
    """A tally from (bucket, user, n) rows."""
    t = Tally(k)
    for bucket, user, n in rows:
        t.add(bucket, user, n)
    return t


def users(n: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_bucket_with_five_users_is_published_with_total():
    # Arrange
    t = tally([("CT", u, 2) for u in users(5)])
    # Act
    out = publishable(t)
    # Assert
    assert out == {"buckets": {"CT": 10}, "total": 10, "suppressed": False}


def test_bucket_with_four_users_is_suppressed_and_total_withheld():
    # Arrange: CT from 6 users, MR from 4 (one of whom uploads a lot)
    t = tally([("CT", u, 1) for u in users(6)] + [("MR", u, 50) for u in users(4, "m")])
    # Act
    out = publishable(t)
    # Assert: MR is nowhere, and total - CT cannot reveal it
    assert out["buckets"] == {"CT": 6}
    assert "MR" not in out["buckets"] and trends.OTHER not in out
    assert out["total"] is None
    assert out["suppressed"] is True


def test_small_buckets_pool_into_other_when_the_pool_covers_five_users():
    # Arrange: three small buckets, 2 + 2 + 1 distinct users
    rows = ([("CT", u, 1) for u in users(7)] + [("MR", u, 3) for u in users(2, "a")]
            + [("US", u, 1) for u in users(2, "b")] + [("XA", "c0", 4)])
    # Act
    out = publishable(tally(rows))
    # Assert
    assert out["buckets"] == {"CT": 7}
    assert out[trends.OTHER] == 6 + 2 + 4
    assert out["total"] == 7 + 12  # nothing was dropped: the total reveals no small bucket
    assert out["suppressed"] is True


def test_pool_of_the_same_few_users_is_not_published():
    # Arrange: two small buckets of the same 3 users
    rows = [("CT", u, 1) for u in users(9)] + [("MR", u, 1) for u in users(3, "x")] + [
        ("US", u, 1) for u in users(3, "x")]
    # Act
    out = publishable(tally(rows))
    # Assert
    assert out["buckets"] == {"CT": 9}
    assert trends.OTHER not in out
    assert out["total"] is None


def test_fewer_than_five_users_in_all_publishes_nothing():
    out = publishable(tally([("CT", u, 100) for u in users(4)]))
    assert out == {"buckets": {}, "total": None, "suppressed": True}


def test_one_user_many_records_counts_as_one_user():
    out = publishable(tally([("CT", "same-user", 1) for _ in range(1000)]))
    assert out["buckets"] == {} and out["total"] is None


def test_empty_tally_publishes_zero_total():
    # Nothing happened: no bucket, and a total of nothing points at no one... but it covers
    # no users either, so it is withheld like any figure under k users.
    out = publishable(Tally(K))
    assert out == {"buckets": {}, "total": None, "suppressed": False}


def test_zero_counts_are_not_recorded():
    t = Tally(K)
    t.add("CT", "u1", 0)
    assert not t.counts and not t.all_users


def test_tally_keeps_at_most_k_users_per_bucket():
    t = tally([("CT", u, 1) for u in users(10_000)])
    assert len(t.users["CT"]) == K
    assert len(t.all_users) == K
    assert t.counts["CT"] == 10_000


def test_threshold_is_the_setting():
    rows = [("CT", u, 1) for u in users(3)]
    assert publishable(tally(rows, k=3))["buckets"] == {"CT": 3}
    assert publishable(tally(rows, k=4))["buckets"] == {}


def test_no_published_label_carries_an_identifier():
    # A hostile upload could put anything in Modality; only code-string shapes pass.
    assert trends.normalize_modality("ct") == "CT"
    assert trends.normalize_modality("MR ") == "MR"
    assert trends.normalize_modality("DOE^JOHN") == "invalid"
    assert trends.normalize_modality("A" * 17) == "invalid"
    assert trends.normalize_modality(None) == "invalid"
    assert trends.normalize_reason("not_dicom") == "not_dicom"
    assert trends.normalize_reason("Patient John Doe") == "other_reason"
    assert trends.normalize_status("complete") == "complete"
    assert trends.normalize_status("weird") == "unknown"


def test_report_day_defaults_to_yesterday_and_refuses_unfinished_days():
    now = datetime(2026, 3, 2, 4, 15, tzinfo=UTC)
    assert trends.report_day({}, now) == date(2026, 3, 1)
    assert trends.report_day({"day": "2026-02-27"}, now) == date(2026, 2, 27)
    for bad, code in (("2026-03-02", "day_not_over"), ("2026-02-30", "bad_day"),
                      ("yesterday", "bad_day"), (20260301, "bad_day")):
        with pytest.raises(BadRequest) as err:
            trends.report_day({"day": bad}, now)
        assert err.value.code == code


def test_consent_metrics_count_only_consenting_unrestricted_users():
    # Arrange: the user cache as the job fills it (restricted, consented)
    who = trends.Users(firestore=None, policy_version="v1")
    who.cache.update({"yes": (False, True), "no": (False, False), "restricted": (True, True)})
    # Assert
    assert who.counts("yes", "studies_by_modality")
    assert not who.counts("no", "studies_by_modality")
    assert who.counts("no", "uploads")  # a service metric (legitimate interest)
    assert not who.counts("restricted", "uploads")
    assert not who.counts("restricted", "studies_by_modality")
    assert not who.counts("unknown-user", "uploads")  # not loaded: never counted


def test_every_metric_has_a_basis():
    assert {m.basis for m in trends.METRICS.values()} <= {trends.CONSENT,
                                                         trends.LEGITIMATE_INTEREST}
    assert trends.METRICS["studies_by_modality"].basis == trends.CONSENT
