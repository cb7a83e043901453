"""DICOMweb through a share and from a browser origin, against the real functions: a share's
headers (``X-Share-Token`` and the ``X-Share-View`` that opening the share returned) reach
exactly its one study, read-only, with the pinned ``dicomweb-client``; expired, revoked and
exhausted shares, views the share did not issue, and the token without its view are refused;
CORS preflights are answered for the Hosting origins only.

World and calls: ``tests/keys_helpers.py``.
"""

from __future__ import annotations

import pytest
import requests

from tests.keys_helpers import (
    SHORT_SHARE_SECONDS,
    KeysWorld,
    bearer,
    new_key,
    open_share,
    opened_share,
    wait_until_expired,
)
from tests.privacy_helpers import ok, sign_link

pytestmark = pytest.mark.localcloud

STUDY_UID = "0020000D"


@pytest.fixture(scope="module")
def world(cloud) -> KeysWorld:
    return KeysWorld(cloud)


def _instance_path(original) -> str:
    ds = original.ds
    return (f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
            f"{ds.SOPInstanceUID}")


def test_a_share_reaches_exactly_its_study_through_dicomweb_client(world):
    created, headers = opened_share(world)
    client = world.client(headers)
    found = client.search_for_studies()
    assert [s[STUDY_UID]["Value"][0] for s in found] == [world.ct.ds.StudyInstanceUID]
    ds = client.retrieve_instance(world.ct.ds.StudyInstanceUID, world.ct.ds.SeriesInstanceUID,
                                  world.ct.ds.SOPInstanceUID)
    assert ds.SOPInstanceUID == world.ct.ds.SOPInstanceUID
    assert ds.pixel_array.tobytes() == world.ct.ds.pixel_array.tobytes()
    series = client.search_for_series(world.ct.ds.StudyInstanceUID)
    assert [s["0020000E"]["Value"][0] for s in series] == [world.ct.ds.SeriesInstanceUID]
    # The owner's other study: like an unknown one.
    mr = world.mr.ds
    assert client.search_for_studies(
        search_filters={"StudyInstanceUID": mr.StudyInstanceUID}) == []
    assert client.search_for_series(mr.StudyInstanceUID) == []
    assert client.search_for_instances(mr.StudyInstanceUID, mr.SeriesInstanceUID) == []
    assert world.get(_instance_path(world.mr), headers).status_code == 404
    # The root searches too: every series and instance of the one study, nothing else.
    all_series = client.search_for_series()
    assert [s["0020000E"]["Value"][0] for s in all_series] == [world.ct.ds.SeriesInstanceUID]
    all_instances = client.search_for_instances()
    assert [i["00080018"]["Value"][0] for i in all_instances] == [world.ct.ds.SOPInstanceUID]
    assert client.search_for_series(search_filters={"Modality": "MR"}) == []
    # Use is one access record of the share for the day, with a count.
    records = ok(sign_link(world.cloud, "access?limit=200", world.alice, method="GET"))
    daily = [r for r in records["records"]
             if r.get("actor") == created["share_id"] and r["kind"] == "share_dicomweb"]
    assert len(daily) == 1 and daily[0]["count"] >= 5


def test_the_token_never_needs_a_url_and_a_share_cannot_write(world):
    created, headers = opened_share(world)
    resp = world.get("studies", {"X-Share-Token": created["token"]})
    assert resp.status_code == 401 and resp.json()["error"] == "share_view_required"
    both = {**headers, **world.alice.headers()}
    resp = world.get("studies", both)
    assert resp.status_code == 400 and resp.json()["error"] == "ambiguous_credentials"
    resp = requests.delete(f"{world.url}/studies/{world.ct.ds.StudyInstanceUID}",
                           headers=headers, timeout=60)
    assert resp.status_code == 403 and resp.json()["error"] == "insufficient_scope"
    assert world.get("studies", headers).json()  # still there


def test_revoked_expired_and_exhausted_shares_are_refused(world):
    created, headers = opened_share(world)
    assert world.get("studies", headers).status_code == 200
    ok(sign_link(world.cloud, f"shares/{created['share_id']}", world.alice, method="DELETE"))
    assert world.get("studies", headers).status_code == 404

    short, short_headers = opened_share(world, expires_in_seconds=SHORT_SHARE_SECONDS)
    assert world.get("studies", short_headers).status_code == 200
    wait_until_expired(short)
    assert world.get("studies", short_headers).status_code == 404

    once, once_headers = opened_share(world, max_views=1)
    assert world.get("studies", once_headers).status_code == 200  # the view counted
    assert open_share(world.cloud, once["token"]).status_code == 404  # no second view
    parts = once_headers["X-Share-View"].split(".")  # share id, number, expiry, MAC
    parts[1] = "2"  # past max_views: the MAC no longer matches
    resp = world.get("studies", {**once_headers, "X-Share-View": ".".join(parts)})
    assert resp.status_code == 404
    other, other_headers = opened_share(world)
    resp = world.get("studies", {**other_headers, "X-Share-View": once_headers["X-Share-View"]})
    assert resp.status_code == 404  # a view of another share


def test_a_restricted_study_closes_its_share(world):
    from tests.privacy_helpers import call

    created, headers = opened_share(world)
    study_key = world.study_key(world.alice, world.ct)
    ok(call(world.cloud, "restrict", world.alice, body={"restricted": True,
                                                         "study_id": study_key}))
    try:
        assert world.get("studies", headers).status_code == 404
    finally:
        ok(call(world.cloud, "restrict", world.alice, body={"restricted": False,
                                                             "study_id": study_key}))
    assert world.get("studies", headers).status_code == 200


def test_cors_preflight_for_the_hosting_origin_only(world):
    origin = world.cloud.env["PACS_VIEWER_ORIGIN"]
    ask = {"Origin": origin, "Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "authorization,accept"}
    resp = requests.options(f"{world.url}/studies", headers=ask, timeout=30)
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == origin
    allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "x-share-token" in allowed
    assert "GET" in resp.headers["Access-Control-Allow-Methods"]
    evil = requests.options(f"{world.url}/studies", headers={**ask, "Origin": "https://evil.test"},
                            timeout=30)
    assert not [h for h in evil.headers if h.lower().startswith("access-control-")]
    key = new_key(world.cloud, world.alice, "read")["key"]
    got = requests.get(f"{world.url}/studies", headers={**bearer(key), "Origin": origin},
                       timeout=30)
    assert got.status_code == 200 and got.headers["Access-Control-Allow-Origin"] == origin
    refused = requests.get(f"{world.url}/studies", headers={"Origin": origin}, timeout=30)
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == origin  # the page sees why
    other = requests.get(f"{world.url}/studies",
                         headers={**bearer(key), "Origin": "https://evil.test"}, timeout=30)
    assert "Access-Control-Allow-Origin" not in other.headers
