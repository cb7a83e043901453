"""The ``purge_unconfirmed`` retention job on the local cloud: a sign-in account that never
confirmed 18+ (no profile), holds no data and has been idle for ``unconfirmed_account_days``
is deleted from the Auth emulator; every other account stays.

Runs are scoped to one test user (``scope``) with an injected clock, so the shared Auth
emulator's other users are never considered; one scheduled run goes through the deployed
path (Pub/Sub, the function) to show the job is registered and reaches Auth.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from firebase_admin import auth
from pacs.retention import runner

from tests.retention_helpers import assert_run_record_shape, now, run_scheduled, seed_upload

pytestmark = pytest.mark.localcloud

DAYS = 7  # settings.unconfirmed_account_days (default)


def _run(cloud, uid: str, days_later: float) -> dict:
    later = now() + timedelta(days=days_later)
    return runner.run(cloud.clients(), "purge_unconfirmed", now=lambda: later,
                      scope=f"{uid}/", lease=False)


def _exists(cloud, uid: str) -> bool:
    try:
        auth.get_user(uid, app=cloud.clients().firebase_app)
    except auth.UserNotFoundError:
        return False
    return True


def test_an_idle_account_without_profile_or_data_is_deleted_after_seven_days(cloud):
    # Arrange: signed up, chose "Sign out" at the 18+ prompt (no profile)
    user = cloud.create_user()
    # Act: six days later, then eight
    early = _run(cloud, user.uid, DAYS - 1)
    assert _exists(cloud, user.uid)
    late = _run(cloud, user.uid, DAYS + 1)
    # Assert
    assert early["status"] == runner.SUCCEEDED and "accounts_purged" not in early["counts"], early
    assert late["status"] == runner.SUCCEEDED, late
    assert late["counts"]["accounts_purged"] == 1, late
    assert not _exists(cloud, user.uid)
    # The token of the deleted account is refused (check_revoked finds no user).
    resp = requests.get(f"{cloud.urls['studies']}/studies", headers=user.headers(), timeout=30)
    assert resp.status_code == 401, resp.text


def test_accounts_with_a_profile_or_with_data_are_kept(cloud):
    # Arrange: one confirmed 18+, one without profile but with an upload record
    confirmed = cloud.create_user(profile=True)
    with_data = cloud.create_user()
    seed_upload(cloud, with_data.uid, "failed", now())
    # Act
    runs = [_run(cloud, u.uid, DAYS + 30) for u in (confirmed, with_data)]
    # Assert
    for record in runs:
        assert record["status"] == runner.SUCCEEDED, record
        assert record["counts"]["accounts_seen"] == 1 and "accounts_purged" not in record["counts"]
    assert _exists(cloud, confirmed.uid) and _exists(cloud, with_data.uid)


def test_the_scheduled_run_reaches_auth_and_purges_nobody_recent(cloud):
    # Arrange: an account created now (no profile)
    user = cloud.create_user()
    # Act: the job as Cloud Scheduler sends it (every account of the emulator, real clock)
    record = run_scheduled(cloud, "purge_unconfirmed")
    # Assert
    assert_run_record_shape(record, "purge_unconfirmed")
    assert record["status"] == runner.SUCCEEDED, record
    assert record["counts"]["accounts_seen"] >= 1 and not record["errors"], record
    assert _exists(cloud, user.uid)
