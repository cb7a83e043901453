"""Shares through the real ``sign-link`` function on the local cloud: a share exchanges for
the owner's manifest and reaches nothing else; bad, expired, revoked and exhausted tokens
get the same 404; views are counted atomically; limits hold; URLs never outlive a share;
revoking a share or deleting the study stops new manifests at once, and URLs already
handed out die within their lifetime.

Studies are seeded directly and URLs verified offline: ``tests/sign_link_helpers.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from pacs import ids
from pacs.links import signing

from tests.sign_link_helpers import (
    TTL,
    call,
    create_share,
    delete_study_docs,
    exchange,
    fetch,
    mutated,
    ok,
    seed_study,
)
from tests.v4_verifier import verify

pytestmark = pytest.mark.localcloud


def test_share_exchanges_for_the_same_manifest_and_reaches_nothing_else(cloud, owner,
                                                                        public_key):
    # Arrange
    seeded = seed_study(cloud, owner.uid)
    elsewhere = seed_study(cloud, owner.uid, instances_per_series=(1,))
    # Act
    share = create_share(cloud, owner, seeded.study_key)
    manifest = ok(exchange(cloud, share["token"]))
    # Assert: the link carries the token in the fragment only
    assert share["url"] == f"{cloud.env['PACS_VIEWER_ORIGIN']}/view#{share['token']}"
    assert "?" not in share["url"] and share["token"] not in share["url"].split("#")[0]
    expires = datetime.fromisoformat(share["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    # Stored hashed, never in clear.
    doc = cloud.clients().firestore.document(f"shares/{share['share_id']}").get().to_dict()
    assert doc["token_hash"] == hashlib.sha256(share["token"].encode()).hexdigest()
    assert share["token"] not in json.dumps(doc, default=str)
    # The same manifest as the owner's.
    owners = ok(call(cloud, "manifest", {"study_id": seeded.study_key}, owner))
    assert manifest["study"] == owners["study"]
    assert ([s["series_id"] for s in manifest["series"]]
            == [s["series_id"] for s in owners["series"]])
    assert manifest["share"]["views"] == 1
    # Series URLs through the share fetch the bytes.
    for series, instances in seeded.series.items():
        page = ok(call(cloud, "share/series", {"token": share["token"], "view": manifest["view"],
                                               "series_id": series}))
        assert sorted(r["instance_id"] for r in page["instances"]) == sorted(instances)
        for row in page["instances"]:
            name = ids.instance_object(owner.uid, seeded.study_key, row["instance_id"])
            verify(row["url"], public_key, now=datetime.now(UTC), max_lifetime=TTL)
            assert fetch(row["url"]).content == seeded.objects[name]
    # Nothing else of the owner's: another study's series, a forged view, no view.
    [other_series] = elsewhere.series
    for body in ({"series_id": other_series, "view": manifest["view"]},
                 {"series_id": next(iter(seeded.series)), "view": "0" * 20 + ".1.9999999999." +
                  "0" * 32},
                 {"series_id": next(iter(seeded.series))}):
        resp = call(cloud, "share/series", {"token": share["token"], **body})
        assert resp.status_code == 404, body
    # The share endpoints ignore a signed-in caller's identity: the token is all there is.
    stranger = cloud.create_user()
    assert call(cloud, "share/manifest", {"token": mutated(share["token"])}, stranger
                ).status_code == 404


def test_bad_expired_revoked_and_exhausted_tokens_get_the_same_404(cloud, owner):
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,))
    limited = create_share(cloud, owner, seeded.study_key, max_views=2)
    short = create_share(cloud, owner, seeded.study_key, expires_in_seconds=1)
    revoked = create_share(cloud, owner, seeded.study_key)
    # Views count, up to the limit.
    first = ok(exchange(cloud, limited["token"]))
    assert ok(exchange(cloud, limited["token"]))["share"]["views"] == 2
    ok(call(cloud, f"shares/{revoked['share_id']}", method="DELETE", user=owner))
    time.sleep(1.5)
    answers = [
        exchange(cloud, limited["token"]),                      # exhausted
        exchange(cloud, short["token"]),                        # expired
        exchange(cloud, revoked["token"]),                      # revoked
        exchange(cloud, limited["share_id"] + "." + "A" * 43),  # right id, wrong secret
        exchange(cloud, "0" * 20 + "." + "A" * 43),             # unknown
        exchange(cloud, "not a token"),                         # malformed
        call(cloud, "share/manifest", {}),                      # none
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({r.content for r in answers}) == 1
    assert answers[0].json() == {"error": "not_found", "message": "no such share"}
    # A view already counted can still open its series after the last view is used.
    [series] = seeded.series
    page = call(cloud, "share/series", {"token": limited["token"], "view": first["view"],
                                        "series_id": series})
    assert page.status_code == 200
    # Listing shows each state; never a token or its hash.
    shares = ok(call(cloud, "shares", method="GET", user=owner))["shares"]
    listed = {s["share_id"]: s for s in shares}
    assert listed[limited["share_id"]]["status"] == "exhausted"
    assert listed[short["share_id"]]["status"] == "expired"
    assert listed[revoked["share_id"]]["status"] == "revoked"
    assert "token" not in json.dumps(listed).replace("token_", "")
    assert "token_hash" not in json.dumps(listed)


def test_view_counting_is_atomic_under_concurrent_exchanges(cloud, owner):
    from concurrent.futures import ThreadPoolExecutor

    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    share = create_share(cloud, owner, seeded.study_key, max_views=5)
    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: exchange(cloud, share["token"]), range(16)))
    elapsed = time.perf_counter() - start
    assert sorted(r.status_code for r in answers) == [200] * 5 + [404] * 11
    assert sorted(r.json()["share"]["views"] for r in answers if r.ok) == [1, 2, 3, 4, 5]
    doc = cloud.clients().firestore.document(f"shares/{share['share_id']}").get().to_dict()
    assert doc["views"] == 5
    assert elapsed < 10


def test_share_limits_are_enforced(cloud, owner):
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    for bad in ({"expires_in_seconds": 7 * 24 * 3600 + 1}, {"expires_in_seconds": 0},
                {"expires_in_seconds": "1h"}, {"max_views": 0}, {"max_views": True}):
        resp = call(cloud, "shares", {"study_id": seeded.study_key, **bad}, owner)
        assert resp.status_code == 400, bad
    week = create_share(cloud, owner, seeded.study_key, expires_in_seconds=7 * 24 * 3600)
    assert week["max_views"] is None


def test_urls_never_outlive_a_short_share(cloud, owner, public_key):
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,))
    share = create_share(cloud, owner, seeded.study_key, expires_in_seconds=60)
    manifest = ok(exchange(cloud, share["token"]))
    assert manifest["ttl_seconds"] <= 60
    share_end = datetime.fromisoformat(share["expires_at"].replace("Z", "+00:00"))
    for series in manifest["series"]:
        verified = verify(series["preview"]["url"], public_key, max_lifetime=60)
        assert verified.expires_at <= share_end + timedelta(seconds=1)


def test_share_expiry_with_an_injected_clock(cloud_env, owner):
    """The domain functions take a clock: a share is refused the moment it expires."""
    from pacs.errors import NotFound
    from pacs.links import manifests, shares
    from pacs.links.access_log import ClientInfo

    seeded = seed_study(cloud_env, owner.uid, instances_per_series=(1,), previews=False)
    share = create_share(cloud_env, owner, seeded.study_key, expires_in_seconds=3600)
    expires = datetime.fromisoformat(share["expires_at"].replace("Z", "+00:00"))
    signer = signing.key_file_signer(cloud_env.env["PACS_SIGNING_KEY_FILE"])
    client = ClientInfo("127.0.0.1", "clock-test")
    before = manifests.Minter(cloud_env.clients(), signer, lambda: expires - timedelta(seconds=5))
    after = manifests.Minter(cloud_env.clients(), signer, lambda: expires)
    manifest = shares.share_manifest(before, {"token": share["token"]}, client)
    assert manifest["ttl_seconds"] == 5  # capped at the share's remaining life
    with pytest.raises(NotFound):
        shares.share_manifest(after, {"token": share["token"]}, client)
    with pytest.raises(NotFound):
        shares.share_series(after, {"token": share["token"], "view": manifest["view"],
                                    "series_id": next(iter(seeded.series))}, client)


# --- Recall: revocation and deletion ------------------------------------------------------

def test_revoking_stops_new_manifests_and_old_urls_die_within_their_lifetime(cloud, owner,
                                                                              public_key):
    # Arrange: a manifest and series URLs handed out through a share
    seeded = seed_study(cloud, owner.uid, instances_per_series=(2,))
    share = create_share(cloud, owner, seeded.study_key)
    handed_out_at = datetime.now(UTC)
    manifest = ok(exchange(cloud, share["token"]))
    [series] = seeded.series
    page = ok(call(cloud, "share/series", {"token": share["token"], "view": manifest["view"],
                                           "series_id": series}))
    # Act
    other = cloud.create_user()
    assert call(cloud, f"shares/{share['share_id']}", method="DELETE", user=other
                ).status_code == 404  # not theirs: not found
    revoked = ok(call(cloud, f"shares/{share['share_id']}", method="DELETE", user=owner))
    # Assert: no new manifest, no new series page, at once
    assert revoked["revoked"] is True and revoked["status"] == "revoked"
    assert exchange(cloud, share["token"]).status_code == 404
    assert call(cloud, "share/series", {"token": share["token"], "view": manifest["view"],
                                        "series_id": series}).status_code == 404
    # URLs already handed out cannot be recalled, but each dies within the link lifetime.
    urls = [s["preview"]["url"] for s in manifest["series"]] + [r["url"] for r in page["instances"]]
    for url in urls:
        verified = verify(url, public_key, max_lifetime=TTL)
        assert verified.expires_at <= handed_out_at + timedelta(seconds=TTL + 2)
    # Revoking again is harmless; an unknown share is the same 404 as someone else's.
    ok(call(cloud, f"shares/{share['share_id']}", method="DELETE", user=owner))
    unknown = call(cloud, f"shares/{'0' * 20}", method="DELETE", user=owner)
    theirs = call(cloud, f"shares/{share['share_id']}", method="DELETE", user=other)
    assert unknown.status_code == theirs.status_code == 404 and unknown.content == theirs.content


def test_deleting_a_study_stops_new_manifests_and_shares(cloud, owner, public_key):
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,))
    share = create_share(cloud, owner, seeded.study_key)
    issued = datetime.now(UTC)
    manifest = ok(call(cloud, "manifest", {"study_id": seeded.study_key}, owner))
    # Act
    delete_study_docs(cloud, seeded.study_key)
    # Assert: new manifests and exchanges fail at once, with the usual 404
    resp = call(cloud, "manifest", {"study_id": seeded.study_key}, owner)
    assert resp.status_code == 404 and resp.json()["message"] == "no such study"
    assert exchange(cloud, share["token"]).status_code == 404
    assert call(cloud, "shares", {"study_id": seeded.study_key}, owner).status_code == 404
    for series in manifest["series"]:
        verified = verify(series["preview"]["url"], public_key, max_lifetime=TTL)
        assert verified.expires_at <= issued + timedelta(seconds=TTL + 2)
