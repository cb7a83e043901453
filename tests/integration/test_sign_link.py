"""The owner's viewer links through the real ``sign-link`` function on the local cloud:
manifests with signed previews, paged series URLs that verify and fetch every instance, a
500-URL page signed in one call, links to a study uploaded through ingest, the 401s and
the one 404, URLs pinned to an object's generation, and restriction refusing them.

Studies are seeded directly and URLs verified offline: ``tests/sign_link_helpers.py``.
Shares: ``test_sign_link_shares.py``; the access history and the rules of shares and access
records: ``test_sign_link_access_log.py``; the CLI: ``test_sign_link_cli.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import pydicom
import pytest
from pacs import ids
from pydicom.data import get_testdata_file

from tests.localcloud_fixture import wait_for
from tests.sign_link_helpers import (
    PNG,
    TTL,
    all_series_pages,
    call,
    check_url,
    create_share,
    exchange,
    fetch,
    ok,
    seed_study,
)
from tests.v4_verifier import verify

pytestmark = pytest.mark.localcloud


# --- The owner's manifest and series URLs --------------------------------------------------

def test_manifest_lists_series_with_signed_previews_that_fetch_the_bytes(cloud, owner,
                                                                         public_key):
    # Arrange
    seeded = seed_study(cloud, owner.uid)
    # Act
    before = datetime.now(UTC).replace(microsecond=0)
    manifest = ok(call(cloud, "manifest", {"study_id": seeded.study_key}, owner))
    # Assert: study and series metadata, no instance URLs
    assert manifest["study_id"] == seeded.study_key
    assert manifest["study"]["StudyDescription"] == "CT seeded"
    assert manifest["study"]["PatientName"] == "CompressedSamples^CT1"
    assert [s["series_id"] for s in manifest["series"]] == list(seeded.series)
    assert [s["SeriesNumber"] for s in manifest["series"]] == [1, 2]
    assert "instances" not in json.dumps(manifest["series"])
    assert manifest["ttl_seconds"] == TTL and manifest["series_page_size"] == 500
    expires = datetime.fromisoformat(manifest["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=TTL) <= expires <= before + timedelta(seconds=TTL + 5)
    # Every preview URL verifies, names its one object and generation, and fetches its bytes.
    derived = cloud.clients().storage.bucket(cloud.buckets["derived"])
    for series in manifest["series"]:
        name = seeded.previews[series["series_id"]]
        generation = str(derived.get_blob(name).generation)
        verified = check_url(series["preview"]["url"], public_key, bucket=derived.name,
                             name=name, generation=generation)
        assert verified.expires_at >= expires
        assert series["preview"]["expires_at"] == manifest["expires_at"]
        resp = fetch(series["preview"]["url"])
        assert resp.status_code == 200 and resp.content == seeded.objects[name]


def test_series_urls_are_paged_verify_and_fetch_every_instance(cloud, owner, public_key):
    # Arrange: 5 instances in one series
    seeded = seed_study(cloud, owner.uid, instances_per_series=(5,))
    [series] = seeded.series
    # Act: pages of two
    pages = all_series_pages(cloud, owner, seeded.study_key, series, page_size=2)
    # Assert
    assert [len(p["instances"]) for p in pages] == [2, 2, 1]
    rows = [row for p in pages for row in p["instances"]]
    assert sorted(r["instance_id"] for r in rows) == sorted(seeded.series[series])
    bucket = cloud.buckets["instances"]
    for row in rows:
        name = ids.instance_object(owner.uid, seeded.study_key, row["instance_id"])
        blob = cloud.clients().storage.bucket(bucket).get_blob(name)
        check_url(row["url"], public_key, bucket=bucket, name=name, generation=str(blob.generation))
        assert row["Rows"] == 128 and row["TransferSyntaxUID"] and row["size"] > 0
        resp = fetch(row["url"])
        assert resp.status_code == 200 and resp.content == seeded.objects[name]
        assert hashlib.sha256(resp.content).hexdigest() == row["sha256"]
        assert pydicom.dcmread(io.BytesIO(resp.content)).Modality == "CT"
    # The default page holds them all.
    [whole] = all_series_pages(cloud, owner, seeded.study_key, series)
    assert len(whole["instances"]) == 5 and whole["next_page_token"] is None


def test_a_page_of_500_urls_is_signed_in_one_call(cloud, owner, public_key):
    """A 500-instance page, signed in parallel by the function: the figure in the report."""
    fs = cloud.clients().firestore
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    [series] = seeded.series
    [real] = seeded.series[series]
    real_doc = fs.document(f"studies/{seeded.study_key}/series/{series}/instances/{real}").get()
    batch = fs.batch()
    for i in range(499):  # documents only: signing does not touch the objects
        key = secrets.token_hex(16)
        doc = {**real_doc.to_dict(), "object": ids.instance_object(owner.uid, seeded.study_key,
                                                                     key), "generation": str(i + 1)}
        batch.set(fs.document(f"studies/{seeded.study_key}/series/{series}/instances/{key}"), doc)
    batch.commit()
    start = time.perf_counter()
    page = ok(call(cloud, "series", {"study_id": seeded.study_key, "series_id": series}, owner))
    elapsed = time.perf_counter() - start
    assert len(page["instances"]) == 500 and page["next_page_token"]
    for row in page["instances"][::50]:
        verify(row["url"], public_key, max_lifetime=TTL)
    print(f"\n[signing cost] sign-link /series: 500 signed URLs in {elapsed:.2f} s end to end")


def test_a_study_uploaded_through_ingest_gets_working_links(cloud, public_key):
    """The whole path: upload, ingest, settle, then a manifest whose URLs fetch the bytes."""
    from tests.ingest_helpers import upload_bytes, wait_final, wait_settled

    user = cloud.create_user()
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    upload_id = upload_bytes(cloud, user, data, "ct.dcm", "application/dicom")
    assert wait_final(cloud, upload_id)["status"] == "complete"
    [series_doc] = wait_settled(cloud, user.uid, 1)
    study_key = series_doc["study_key"]
    wait_for(lambda: (cloud.clients().firestore.document(f"studies/{study_key}").get()
                      .to_dict() or {}).get("instance_count") == 1, what="study counts")
    manifest = ok(call(cloud, "manifest", {"study_id": study_key}, user))
    [series] = manifest["series"]
    assert series["Modality"] == "CT" and series["preview"]["status"] == "ready"
    png = fetch(series["preview"]["url"])
    assert png.status_code == 200 and png.content[:8] == PNG[:8]
    verify(series["preview"]["url"], public_key, now=datetime.now(UTC), max_lifetime=TTL)
    [row] = ok(call(cloud, "series", {"study_id": study_key, "series_id": series["series_id"]},
                    user))["instances"]
    verify(row["url"], public_key, now=datetime.now(UTC), max_lifetime=TTL)
    fetched = fetch(row["url"])
    assert fetched.status_code == 200 and fetched.content[128:] == data[128:]
    assert hashlib.sha256(fetched.content).hexdigest() == row["sha256"]


def test_a_url_pins_its_generation_so_a_replaced_object_is_not_served(cloud, owner):
    """The URL names the generation the document recorded: once the object is replaced,
    the old URL no longer fetches anything (fake-gcs-server honours ``generation``)."""
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    [series] = seeded.series
    [old] = ok(call(cloud, "series", {"study_id": seeded.study_key, "series_id": series},
                    owner))["instances"]
    name = ids.instance_object(owner.uid, seeded.study_key, old["instance_id"])
    assert fetch(old["url"]).content == seeded.objects[name]
    # Act
    cloud.clients().storage.bucket(cloud.buckets["instances"]).blob(name).upload_from_string(
        b"replaced")
    # Assert
    resp = fetch(old["url"])
    assert resp.status_code == 404 and b"replaced" not in resp.content


# --- Errors: 401 and the one 404 ----------------------------------------------------------

def test_auth_errors_and_not_yours_is_indistinguishable_from_unknown(cloud, owner):
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,))
    other = cloud.create_user()
    series = next(iter(seeded.series))
    for route, body in (("manifest", {"study_id": seeded.study_key}),
                        ("series", {"study_id": seeded.study_key, "series_id": series}),
                        ("shares", {"study_id": seeded.study_key})):
        # No token, bad token: 401 with a JSON reason.
        resp = call(cloud, route, body)
        assert resp.status_code == 401 and resp.json()["error"] == "missing_token"
        resp = call(cloud, route, body, headers={"Authorization": "Bearer not-a-jwt"})
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
        # Someone else's study, an unknown id and a malformed id: the very same 404.
        theirs = call(cloud, route, body, other)
        unknown = call(cloud, route, {**body, "study_id": secrets.token_hex(16)}, owner)
        malformed = call(cloud, route, {**body, "study_id": "../users/x"}, owner)
        assert theirs.status_code == unknown.status_code == malformed.status_code == 404
        assert theirs.content == unknown.content == malformed.content
        assert theirs.json() == {"error": "not_found", "message": "no such study"}
    # An unknown series of one's own study is a 404 too.
    resp = call(cloud, "series", {"study_id": seeded.study_key, "series_id": "f" * 32}, owner)
    assert resp.status_code == 404
    # Access history and share list need a token as well.
    assert call(cloud, "access", method="GET").status_code == 401
    assert call(cloud, "shares", method="GET").status_code == 401
    assert call(cloud, "nowhere", {}, owner).status_code == 404


def test_revoked_session_gets_401(cloud):
    from firebase_admin import auth as admin_auth

    user = cloud.create_user()
    seeded = seed_study(cloud, user.uid, instances_per_series=(1,))
    ok(call(cloud, "manifest", {"study_id": seeded.study_key}, user))
    time.sleep(1.1)  # revocation is second-granular
    admin_auth.revoke_refresh_tokens(user.uid, app=cloud.clients().firebase_app)
    resp = call(cloud, "manifest", {"study_id": seeded.study_key}, user)
    assert resp.status_code == 401 and resp.json()["error"] == "revoked_token"


# --- Restriction hook ---------------------------------------------------------------------

@pytest.mark.parametrize("level", ["account", "study"])
def test_restriction_refuses_manifests_and_shares(cloud, owner, level):
    from pacs.links import manifests

    fs = cloud.clients().firestore
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    share = create_share(cloud, owner, seeded.study_key)
    ref = (fs.collection("users").document(owner.uid) if level == "account"
           else fs.collection("studies").document(seeded.study_key))
    assert manifests.is_restricted(fs, owner.uid, seeded.study_key) is False  # absent = false
    ref.set({"restricted": True}, merge=True)
    try:
        assert manifests.is_restricted(fs, owner.uid, seeded.study_key) is True
        for route, body in (("manifest", {"study_id": seeded.study_key}),
                            ("series", {"study_id": seeded.study_key,
                                        "series_id": next(iter(seeded.series))}),
                            ("shares", {"study_id": seeded.study_key})):
            resp = call(cloud, route, body, owner)
            assert resp.status_code == 403 and resp.json()["error"] == "restricted"
        # A share of a restricted study is simply not found.
        assert exchange(cloud, share["token"]).status_code == 404
    finally:
        ref.set({"restricted": False}, merge=True)
    assert manifests.is_restricted(fs, owner.uid, seeded.study_key) is False
    ok(call(cloud, "manifest", {"study_id": seeded.study_key}, owner))
    ok(exchange(cloud, share["token"]))
