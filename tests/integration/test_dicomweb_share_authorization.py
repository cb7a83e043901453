"""A share in the ``Authorization`` header (``Authorization: Share <token> <view>``), against
the real functions: OHIF's DICOMweb data source forwards only ``Authorization`` from its
user authentication service, so the hosted OHIF's share recipients send the share this way
(web/ohif/share.ts). It reaches exactly its study, read-only, with the pinned
``dicomweb-client``, and is refused like the ``X-Share-*`` headers once the share is
revoked, expired, used up or restricted, or without its view.

World and calls: ``tests/keys_helpers.py``.
"""

from __future__ import annotations

import pytest
import requests

from tests.keys_helpers import (
    SHORT_SHARE_SECONDS,
    KeysWorld,
    open_share,
    opened_share,
    wait_until_expired,
)
from tests.privacy_helpers import call, ok, sign_link

pytestmark = pytest.mark.localcloud

STUDY_UID = "0020000D"


@pytest.fixture(scope="module")
def world(cloud) -> KeysWorld:
    return KeysWorld(cloud)


def test_a_share_in_authorization_reaches_exactly_its_study(world):
    created, headers = opened_share(world, True)
    client = world.client(headers)
    ct, mr = world.ct.ds, world.mr.ds
    found = client.search_for_studies()
    assert [s[STUDY_UID]["Value"][0] for s in found] == [ct.StudyInstanceUID]
    metadata = client.retrieve_study_metadata(ct.StudyInstanceUID)
    assert [m["00080018"]["Value"][0] for m in metadata] == [ct.SOPInstanceUID]
    frames = client.retrieve_instance_frames(ct.StudyInstanceUID, ct.SeriesInstanceUID,
                                             ct.SOPInstanceUID, [1])
    assert frames[0] == ct.PixelData
    # The owner's other study: like an unknown one.
    assert client.search_for_studies(search_filters={"StudyInstanceUID": mr.StudyInstanceUID}) == []
    assert client.search_for_series(mr.StudyInstanceUID) == []
    assert world.get(f"studies/{mr.StudyInstanceUID}/metadata", headers).status_code == 404
    # Read-only; one identity per request; the view is required.
    resp = requests.delete(f"{world.url}/studies/{ct.StudyInstanceUID}", headers=headers,
                           timeout=60)
    assert resp.status_code == 403 and resp.json()["error"] == "insufficient_scope"
    resp = world.get("studies", {**headers, "X-Share-Token": created["token"]})
    assert resp.status_code == 400 and resp.json()["error"] == "ambiguous_credentials"
    resp = world.get("studies", {"Authorization": f"Share {created['token']}"})
    assert resp.status_code == 401 and resp.json()["error"] == "share_view_required"
    # Counted as the share's use, like the X-Share-* headers.
    records = ok(sign_link(world.cloud, "access?limit=200", world.alice, method="GET"))
    daily = [r for r in records["records"]
             if r.get("actor") == created["share_id"] and r["kind"] == "share_dicomweb"]
    assert len(daily) == 1 and daily[0]["count"] >= 5


def test_a_share_in_authorization_is_refused_when_the_share_is(world):
    created, headers = opened_share(world, True)
    assert world.get("studies", headers).status_code == 200
    ok(sign_link(world.cloud, f"shares/{created['share_id']}", world.alice, method="DELETE"))
    assert world.get("studies", headers).status_code == 404

    created_short, short = opened_share(world, True, expires_in_seconds=SHORT_SHARE_SECONDS)
    assert world.get("studies", short).status_code == 200
    wait_until_expired(created_short)
    assert world.get("studies", short).status_code == 404

    once, once_headers = opened_share(world, True, max_views=1)
    assert world.get("studies", once_headers).status_code == 200  # within its one view
    assert open_share(world.cloud, once["token"]).status_code == 404  # no second view
    token, view = once_headers["Authorization"].split(" ")[1:]
    parts = view.split(".")  # share id, number, expiry, MAC
    parts[1] = "2"
    forged = {"Authorization": f"Share {token} {'.'.join(parts)}"}
    assert world.get("studies", forged).status_code == 404

    _, restricted = opened_share(world, True)
    study_key = world.study_key(world.alice, world.ct)
    ok(call(world.cloud, "restrict", world.alice, body={"restricted": True, "study_id": study_key}))
    try:
        assert world.get("studies", restricted).status_code == 404
    finally:
        ok(call(world.cloud, "restrict", world.alice,
                body={"restricted": False, "study_id": study_key}))
    assert world.get("studies", restricted).status_code == 200
