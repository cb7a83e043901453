"""API keys through the real functions: created on a recent sign-in, shown once, stored as a
keyed hash the rules keep from every client, used by the pinned ``dicomweb-client`` (answers
equal what pydicom reads), counted per key and day, revoked at once, suspended by a
restriction and restored when it is lifted, expired, and deleted by an erasure.

World and calls: ``tests/keys_helpers.py``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pydicom
import pytest

from tests import rules_matrix
from tests.keys_helpers import (
    KeysWorld,
    bearer,
    create_key,
    list_keys,
    new_key,
    restrict,
)
from tests.privacy_helpers import call, ok, sign_link, stale_token, wait_receipt

pytestmark = pytest.mark.localcloud

STUDY_UID = "0020000D"


@pytest.fixture(scope="module")
def world(cloud) -> KeysWorld:
    return KeysWorld(cloud)


def _key_doc(world: KeysWorld, key_id: str) -> dict:
    snap = world.cloud.clients().firestore.collection("api_keys").document(key_id).get()
    return snap.to_dict() if snap.exists else {}


def test_a_key_is_shown_once_and_stored_only_as_its_keyed_hash(world):
    created = new_key(world.cloud, world.alice, "read", name="Orthanc peer", days=30)
    key = created["key"]
    assert key.startswith("pacsk_") and created["key_id"] in key
    assert created["scope"] == "read" and created["status"] == "active"
    expires = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)
    doc = _key_doc(world, created["key_id"])
    secret = key.split("_", 2)[2]
    expected = hmac.new(world.cloud.settings().hash_key,
                        f"api-key\x00{created['key_id']}\x00{secret}".encode(),
                        hashlib.sha256).hexdigest()
    assert doc["key_hash"] == expected and doc["owner"] == world.alice.uid
    assert secret not in str(doc) and key not in str(doc)
    listed = list_keys(world.cloud, world.alice)
    mine = next(k for k in listed["keys"] if k["key_id"] == created["key_id"])
    assert mine["name"] == "Orthanc peer" and mine["last_used_at"] is None
    assert "key" not in mine and "key_hash" not in mine and secret not in str(listed)
    assert all(k["key_id"] != created["key_id"] for k in list_keys(world.cloud,
                                                                    world.bob)["keys"])


def test_no_client_reads_a_key_document_not_even_its_owner(world):
    created = new_key(world.cloud, world.alice, "read")
    rules_matrix.assert_reads(world.cloud, f"api_keys/{created['key_id']}",
                              denied=[world.alice, world.bob, rules_matrix.ANONYMOUS])
    resp = world.cloud.firestore_query(
        "", rules_matrix.owner_query("api_keys", world.alice.uid), world.alice.id_token)
    assert resp.status_code == 403, resp.text


def test_creating_a_key_needs_a_recent_sign_in_and_valid_fields(world):
    resp = create_key(world.cloud, world.alice, token=stale_token(world.alice))
    assert resp.status_code == 403 and resp.json()["error"] == "recent_sign_in_required"
    for body, code in (({"name": "x", "scope": "admin"}, "bad_scope"),
                       ({"name": "", "scope": "read"}, "bad_name"),
                       ({"name": "x" * 65, "scope": "read"}, "bad_name"),
                       ({"name": "x", "scope": "read", "expires_in_days": 366},
                        "bad_expires_in_days"),
                       ({"name": "x", "scope": "read", "expires_in_days": True},
                        "bad_expires_in_days")):
        resp = call(world.cloud, "keys", world.alice, body=body)
        assert resp.status_code == 400 and resp.json()["error"] == code, body
    assert call(world.cloud, "keys", None, body={"name": "x", "scope": "read"}).status_code == 401


def test_dicomweb_client_with_a_key_reads_the_owners_studies_only(world):
    key = new_key(world.cloud, world.alice, "read")["key"]
    client = world.client(bearer(key))
    found = client.search_for_studies()
    assert sorted(s[STUDY_UID]["Value"][0] for s in found) == sorted(
        [world.ct.ds.StudyInstanceUID, world.mr.ds.StudyInstanceUID])
    ds = client.retrieve_instance(world.mr.ds.StudyInstanceUID, world.mr.ds.SeriesInstanceUID,
                                  world.mr.ds.SOPInstanceUID)
    assert ds.PatientName == world.mr.ds.PatientName
    assert ds.pixel_array.tobytes() == world.mr.ds.pixel_array.tobytes()
    bob_key = new_key(world.cloud, world.bob, "read")["key"]
    bob_found = world.client(bearer(bob_key)).search_for_studies()
    assert [s[STUDY_UID]["Value"][0] for s in bob_found] == [world.ct.ds.StudyInstanceUID]
    assert world.get(f"studies/{world.mr.ds.StudyInstanceUID}/series/"
                     f"{world.mr.ds.SeriesInstanceUID}/instances/{world.mr.ds.SOPInstanceUID}",
                     bearer(bob_key)).status_code == 404
    assert isinstance(ds, pydicom.Dataset)


def test_use_is_counted_per_key_and_day_and_shown_as_last_use(world):
    created = new_key(world.cloud, world.alice, "read")
    headers = bearer(created["key"])
    for _ in range(3):
        assert world.get("studies", headers).status_code == 200
    records = ok(sign_link(world.cloud, "access?limit=200", world.alice, method="GET"))
    mine = [r for r in records["records"] if r.get("actor") == created["key_id"]]
    assert 1 <= len(mine) <= 2, mine  # one per UTC day
    assert {r["kind"] for r in mine} == {"api_key_used"} and sum(r["count"] for r in mine) == 3
    assert mine[0]["day"] == datetime.now(UTC).strftime("%Y-%m-%d")  # newest first
    listed = next(k for k in list_keys(world.cloud, world.alice)["keys"]
                  if k["key_id"] == created["key_id"])
    assert listed["last_used_at"] is not None


def test_a_revoked_key_is_refused_at_once(world):
    created = new_key(world.cloud, world.alice, "read-write")
    headers = bearer(created["key"])
    assert world.get("studies", headers).status_code == 200
    revoked = ok(call(world.cloud, f"keys/{created['key_id']}", world.alice, method="DELETE"))
    assert revoked["status"] == "revoked" and revoked["revoked"] is True
    resp = world.get("studies", headers)
    assert resp.status_code == 401 and resp.json()["error"] == "key_revoked"
    # Not Bob's to revoke; unknown ids are the same 404.
    other = new_key(world.cloud, world.alice, "read")
    for key_id in (other["key_id"], "0" * 20, "nope"):
        resp = call(world.cloud, f"keys/{key_id}", world.bob, method="DELETE")
        assert resp.status_code == 404, key_id
    assert world.get("studies", bearer(other["key"])).status_code == 200


def test_wrong_and_malformed_keys_are_refused_alike(world):
    created = new_key(world.cloud, world.alice, "read")
    forged = created["key"][:-4] + ("AAAA" if not created["key"].endswith("AAAA") else "BBBB")
    for key in (forged, "pacsk_short", "pacsk_" + "0" * 20 + "_" + "A" * 43):
        resp = world.get("studies", bearer(key))
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_key", key


def test_an_expired_key_is_refused(world):
    created = new_key(world.cloud, world.alice, "read", days=1)
    world.cloud.clients().firestore.collection("api_keys").document(created["key_id"]).update(
        {"expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    resp = world.get("studies", bearer(created["key"]))
    assert resp.status_code == 401 and resp.json()["error"] == "key_expired"


def test_a_restriction_suspends_keys_and_lifting_it_restores_them(cloud):
    world_user = cloud.create_user(profile=True)
    key = new_key(cloud, world_user, "read")
    url = cloud.urls["dicomweb"]

    def studies():
        import requests
        return requests.get(f"{url}/studies", headers=bearer(key["key"]), timeout=60)

    assert studies().status_code == 200
    restrict(cloud, world_user, True)
    resp = studies()
    assert resp.status_code == 403 and resp.json()["error"] == "key_suspended"
    listed = list_keys(cloud, world_user)
    assert listed["suspended"] is True and listed["keys"][0]["status"] == "suspended"
    refused = create_key(cloud, world_user)
    assert refused.status_code == 403 and refused.json()["error"] == "restricted"
    restrict(cloud, world_user, False)
    assert studies().status_code == 200
    assert list_keys(cloud, world_user)["keys"][0]["status"] == "active"


def test_an_erasure_deletes_the_keys_and_their_records(cloud):
    import requests

    user = cloud.create_user(profile=True)
    key = new_key(cloud, user, "read")
    url = cloud.urls["dicomweb"]
    assert requests.get(f"{url}/studies", headers=bearer(key["key"]), timeout=60).ok
    fs = cloud.clients().firestore
    assert fs.collection("api_keys").document(key["key_id"]).get().exists
    answer = ok(call(cloud, "requests", user, body={"type": "erasure"}), 202)["request"]
    wait_receipt(cloud, answer["receipt_id"])
    assert not fs.collection("api_keys").document(key["key_id"]).get().exists
    from google.cloud.firestore_v1.base_query import FieldFilter

    left = fs.collection("access").where(filter=FieldFilter("owner", "==", user.uid)).get()
    assert not list(left)
    resp = requests.get(f"{url}/studies", headers=bearer(key["key"]), timeout=60)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_key"


def test_a_key_is_refused_once_the_erasure_marker_exists(cloud):
    """Between the marker and the erasure's deletion of the keys, no use is recorded."""
    import requests
    from pacs import markers

    user = cloud.create_user(profile=True)
    key = new_key(cloud, user, "read")
    settings = cloud.settings()
    marker = markers.erasure_marker_ref(cloud.clients().firestore, settings.hash_key, user.uid)
    marker.create({"status": "in_progress"})
    try:
        resp = requests.get(f"{cloud.urls['dicomweb']}/studies", headers=bearer(key["key"]),
                            timeout=60)
        assert resp.status_code == 403 and resp.json()["error"] == "erasure_in_progress"
        refused = create_key(cloud, user)
        assert refused.status_code == 403 and refused.json()["error"] == "erasure_in_progress"
        from google.cloud.firestore_v1.base_query import FieldFilter

        records = cloud.clients().firestore.collection("access").where(
            filter=FieldFilter("actor", "==", key["key_id"])).get()
        assert not list(records)
    finally:
        marker.delete()


def test_a_read_key_cannot_delete_a_study_and_a_read_write_key_can(cloud):
    """DELETE /studies/{study} needs the read-write scope (STOW-RS is checked in
    ``test_dicomweb_stow.py``)."""
    import requests
    from pydicom.data import get_testdata_file

    from tests.dicomweb_helpers import ingest, read_original

    user = cloud.create_user(profile=True)
    ct = read_original(get_testdata_file("CT_small.dcm"))
    ingest(cloud, user, [ct])
    study = f"{cloud.urls['dicomweb']}/studies/{ct.ds.StudyInstanceUID}"
    reader, writer = new_key(cloud, user, "read")["key"], new_key(cloud, user, "read-write")["key"]
    resp = requests.delete(study, headers=bearer(reader), timeout=60)
    assert resp.status_code == 403 and resp.json()["error"] == "insufficient_scope"
    found = requests.get(f"{cloud.urls['dicomweb']}/studies", headers=bearer(reader), timeout=60)
    assert [s[STUDY_UID]["Value"][0] for s in found.json()] == [ct.ds.StudyInstanceUID]
    resp = requests.delete(study, headers=bearer(writer), timeout=120)
    assert resp.status_code in (200, 202), resp.text
    after = requests.get(f"{cloud.urls['dicomweb']}/studies", headers=bearer(reader), timeout=60)
    assert after.status_code == 200 and after.json() == []


def test_a_burst_on_a_fresh_key_is_served_and_counted_exactly(world):
    """A viewer asks for many frames at once: every request is answered and counted once
    (the first use also stamps last_used_at, which concurrent requests read)."""
    from concurrent.futures import ThreadPoolExecutor

    created = new_key(world.cloud, world.alice, "read")
    headers = bearer(created["key"])
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: world.get("studies", headers).status_code,
                                 range(36)))
    assert statuses == [200] * 36, statuses
    from google.cloud.firestore_v1.base_query import FieldFilter

    records = [r.to_dict() for r in world.cloud.clients().firestore.collection("access").where(
        filter=FieldFilter("actor", "==", created["key_id"])).stream()]
    assert 1 <= len(records) <= 2  # one per UTC day (two if the burst straddled midnight)
    assert sum(r["count"] for r in records) == 36
    assert {r["owner"] for r in records} == {world.alice.uid}
