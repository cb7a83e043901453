"""STOW-RS against limits that need settings of their own (a local cloud of this module):
the storage quota (every part A700, 409, nothing stored or recorded) and the largest file
ingest takes (an oversize part is C000, the request's other parts stored)."""

from __future__ import annotations

import os

import pytest

from tests.ingest_helpers import instance_objects
from tests.localcloud_fixture import start_test_cloud, stop_test_cloud
from tests.stow_helpers import encoded, failed, fresh, last_ledger, multipart, post, referenced

pytestmark = pytest.mark.localcloud

QUOTA = 200 * 1024  # bytes: a small STOW fits, a second large one does not
MAX_FILE = 60 * 1024  # CT_small (39 KB) fits, emri_small (84 KB) does not


@pytest.fixture(scope="module")
def small_cloud(tmp_path_factory):
    saved = dict(os.environ)
    cloud = start_test_cloud(tmp_path_factory.mktemp("stow-limits"), extra_env={
        "PACS_USER_QUOTA_BYTES": str(QUOTA), "PACS_ZIP_MAX_MEMBER_BYTES": str(MAX_FILE)})
    yield cloud
    stop_test_cloud(cloud)
    os.environ.clear()
    os.environ.update(saved)


def test_over_quota_every_part_is_a700_and_nothing_is_stored(small_cloud):
    user = small_cloud.create_user(profile=True)
    first = fresh("CT_small.dcm")
    resp = post(small_cloud, user, multipart([encoded(first)]))
    assert resp.status_code == 200, resp.text
    parts = [fresh("CT_small.dcm") for _ in range(5)]  # ~200 KB with the first: over
    resp = post(small_cloud, user, multipart([encoded(p) for p in parts] + [b"not dicom"]))
    assert resp.status_code == 409, resp.text
    assert failed(resp.json()) == [(p.SOPInstanceUID, 0xA700) for p in parts] + [
        (None, 0xC000)]
    assert "00081199" not in resp.json()
    assert len(instance_objects(small_cloud, user.uid)) == 1  # the first request's only
    record, _ = last_ledger(small_cloud, user.uid)
    assert record["counts"]["stored"] == 1  # no record for the refused request


def test_an_oversize_part_is_c000_and_the_rest_stored(small_cloud):
    user = small_cloud.create_user(profile=True)
    small, large = fresh("CT_small.dcm"), fresh("emri_small.dcm")
    resp = post(small_cloud, user, multipart([encoded(large), encoded(small)]))
    assert resp.status_code == 202, resp.text
    assert failed(resp.json()) == [(None, 0xC000)]  # refused before its header was read
    assert [r[1] for r in referenced(resp.json())] == [small.SOPInstanceUID]
    _, ledger = last_ledger(small_cloud, user.uid)
    assert [(r["status"], r.get("reason")) for r in ledger] == [
        ("rejected", "member_too_large"), ("stored", None)]
