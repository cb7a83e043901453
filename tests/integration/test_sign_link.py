"""Viewer links, shares and the access history through the real ``sign-link`` function on the
local cloud: every URL is verified offline against the signing key's public half
(``tests/v4_verifier.py``) and fetched from fake-gcs-server, which serves it without checking
the signature.

Studies are seeded directly (objects under their canonical names, documents with the admin
client), so these tests do not depend on ingest. The instance keys are random: the indexer
sees names that do not match the files' SOP Instance UIDs and leaves them alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pydicom
import pytest
import requests
from pacs import ids
from pacs.links import signing
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from localcloud import config
from tests.localcloud_fixture import LocalCloud, User, wait_for
from tests.v4_verifier import public_key_of_key_file, verify

pytestmark = pytest.mark.localcloud

UA = "pacs-tests/1.0 (sign-link)"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
TTL = 15 * 60


@dataclass
class Seeded:
    uid: str
    study_key: str
    series: dict[str, list[str]] = field(default_factory=dict)  # series key -> instance keys
    objects: dict[str, bytes] = field(default_factory=dict)  # object name -> bytes
    previews: dict[str, str] = field(default_factory=dict)  # series key -> preview object


def _dicom(instance_number: int) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = instance_number
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def seed_study(cloud: LocalCloud, uid: str, instances_per_series=(3, 2),
               previews: bool = True) -> Seeded:
    """A study of the user: DICOM objects, previews and the documents ingest would write."""
    fs = cloud.clients().firestore
    storage = cloud.clients().storage
    study = secrets.token_hex(16)
    seeded = Seeded(uid, study)
    study_ref = fs.collection("studies").document(study)
    total = 0
    for number, count in enumerate(instances_per_series, start=1):
        series = secrets.token_hex(16)
        seeded.series[series] = []
        series_ref = study_ref.collection("series").document(series)
        for i in range(count):
            instance = secrets.token_hex(16)
            data = _dicom(i + 1)
            name = ids.instance_object(uid, study, instance)
            blob = storage.bucket(cloud.buckets["instances"]).blob(name)
            blob.upload_from_string(data, content_type="application/dicom")
            series_ref.collection("instances").document(instance).set({
                "owner": uid, "study_key": study, "series_key": series,
                "SOPInstanceUID": f"1.2.3.{number}.{i}", "InstanceNumber": i + 1,
                "ImagePositionPatient": [0.0, 0.0, float(i)], "SliceLocation": float(i),
                "Rows": 128, "Columns": 128, "NumberOfFrames": 1,
                "TransferSyntaxUID": "1.2.840.10008.1.2.1", "object": name,
                "generation": str(blob.generation), "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()})
            seeded.series[series].append(instance)
            seeded.objects[name] = data
        preview = {"status": "none"}
        if previews:
            name = ids.preview_object(uid, study, series)
            blob = storage.bucket(cloud.buckets["derived"]).blob(name)
            png = PNG + series.encode()
            blob.upload_from_string(png, content_type="image/png")
            preview = {"status": "ready", "object": name, "generation": str(blob.generation),
                       "instance_key": seeded.series[series][0]}
            seeded.previews[series] = name
            seeded.objects[name] = png
        series_ref.set({"owner": uid, "study_key": study, "Modality": "CT",
                        "SeriesNumber": number, "SeriesDescription": f"series {number}",
                        "instance_count": count, "preview": preview})
        total += count
    first_preview = next(iter(seeded.previews.values()), None)
    study_ref.set({"owner": uid, "StudyDate": "20040119", "StudyDescription": "CT seeded",
                   "PatientName": "CompressedSamples^CT1", "StudyInstanceUID": "1.2.3",
                   "series_count": len(instances_per_series), "instance_count": total,
                   "modalities": ["CT"],
                   "preview": {"status": "ready", "object": first_preview} if first_preview
                   else None})
    return seeded


def delete_study_docs(cloud: LocalCloud, study: str) -> None:
    fs = cloud.clients().firestore
    ref = fs.collection("studies").document(study)
    for series in ref.collection("series").stream():
        for inst in series.reference.collection("instances").stream():
            inst.reference.delete()
        series.reference.delete()
    ref.delete()


def call(cloud: LocalCloud, route: str, body=None, user: User | None = None,
         method: str = "POST", headers: dict | None = None, params=None) -> requests.Response:
    h = {"User-Agent": UA, **(user.headers() if user else {}), **(headers or {})}
    return requests.request(method, f"{cloud.urls['sign-link']}/{route}", json=body, headers=h,
                            params=params, timeout=60)


def ok(resp: requests.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def all_series_pages(cloud, user, study, series, page_size=None) -> list[dict]:
    pages, token = [], None
    while True:
        body = {"study_id": study, "series_id": series, "page_token": token}
        if page_size:
            body["page_size"] = page_size
        page = ok(call(cloud, "series", body, user))
        pages.append(page)
        token = page["next_page_token"]
        if not token:
            return pages


def fetch(url: str) -> requests.Response:
    """GET a signed URL from fake-gcs-server, exactly as issued.

    fake-gcs-server serves path-style (XML API) downloads only when the Host header is its
    ``-public-host`` (default ``storage.googleapis.com``). An emulator layer started without
    ``-public-host 127.0.0.1`` answers 404 to the URL as issued; then the same URL (same
    address, path and query) is sent again naming the default public host.
    """
    resp = requests.get(url, timeout=30)
    if resp.status_code == 404:
        resp = requests.get(url, timeout=30, headers={"Host": "storage.googleapis.com"})
    return resp


def access_records(cloud, uid) -> list[dict]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    q = cloud.clients().firestore.collection("access").where(filter=FieldFilter("owner", "==", uid))
    return [s.to_dict() for s in q.stream()]


@pytest.fixture(scope="module")
def public_key(cloud):
    path = signing.ensure_local_key(cloud.env["PACS_SIGNING_KEY_FILE"], cloud.project)
    return public_key_of_key_file(path)


@pytest.fixture
def owner(cloud):
    return cloud.create_user()


def check_url(url: str, public_key, *, bucket: str, name: str, generation: str,
              max_lifetime: int = TTL):
    """The URL verifies, names exactly this object version and lives at most max_lifetime."""
    verified = verify(url, public_key, now=datetime.now(UTC), max_lifetime=max_lifetime)
    assert (verified.bucket, verified.object_name, verified.generation) == (bucket, name,
                                                                             generation)
    assert verified.account.startswith(signing.LOCAL_SIGNER_NAME + "@demo-test-")
    return verified


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


# --- Errors: 401 and the one 404 ---------------------------------------------------------

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


# --- Shares ----------------------------------------------------------------------------------

def create_share(cloud, user, study, **kwargs) -> dict:
    return ok(call(cloud, "shares", {"study_id": study, **kwargs}, user))


def mutated(token: str) -> str:
    """The token with its last character changed."""
    return token[:-1] + ("B" if token[-1] != "B" else "C")


def exchange(cloud, token) -> requests.Response:
    return call(cloud, "share/manifest", {"token": token})


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
    assert [s["series_id"] for s in manifest["series"]] == [s["series_id"] for s in owners["series"]]
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
    listed = {s["share_id"]: s for s in ok(call(cloud, "shares", method="GET", user=owner))["shares"]}
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


# --- Restriction hook ------------------------------------------------------------------------

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


# --- Access history --------------------------------------------------------------------------

def test_every_manifest_share_and_page_writes_an_access_record(cloud, owner):
    # Arrange / Act
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,))
    [series, _] = [*seeded.series, None][:2]
    ok(call(cloud, "manifest", {"study_id": seeded.study_key}, owner))
    ok(call(cloud, "series", {"study_id": seeded.study_key, "series_id": series}, owner))
    share = create_share(cloud, owner, seeded.study_key)
    manifest = ok(call(cloud, "share/manifest", {"token": share["token"]},
                       headers={"X-Forwarded-For": "203.0.113.7"}))
    ok(call(cloud, "share/series", {"token": share["token"], "view": manifest["view"],
                                    "series_id": series}))
    ok(call(cloud, f"shares/{share['share_id']}", method="DELETE", user=owner))
    # Assert: the records, as written
    records = sorted(access_records(cloud, owner.uid), key=lambda r: r["at"])
    assert [r["kind"] for r in records] == ["manifest", "series_urls", "share_created",
                                           "share_used", "series_urls", "share_revoked"]
    assert {r["study_key"] for r in records} == {seeded.study_key}
    assert [r["actor"] for r in records] == [owner.uid, owner.uid, owner.uid, share["share_id"],
                                            share["share_id"], owner.uid]
    assert all(r["user_agent"] == UA for r in records)
    # One trusted hop: the client's forwarded address, as a front end would append it.
    assert [r["ip"] for r in records] == ["127.0.0.1"] * 3 + ["203.0.113.7"] + ["127.0.0.1"] * 2
    assert all(isinstance(r["at"], datetime) for r in records)
    # GET /access: the owner's records, newest first, paged; nobody else's.
    first = ok(call(cloud, "access", method="GET", user=owner, params={"limit": 4}))
    rest = ok(call(cloud, "access", method="GET", user=owner,
                   params={"limit": 4, "page_token": first["next_page_token"]}))
    listed = first["records"] + rest["records"]
    assert [r["kind"] for r in listed] == [r["kind"] for r in reversed(records)]
    assert rest["next_page_token"] is None
    assert all("owner" not in r and r["study_id"] == seeded.study_key for r in listed)
    stranger = cloud.create_user()
    assert ok(call(cloud, "access", method="GET", user=stranger))["records"] == []


def test_share_tokens_and_urls_never_reach_the_logs(cloud, owner):
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,))
    share = create_share(cloud, owner, seeded.study_key)
    manifest = ok(exchange(cloud, share["token"]))
    exchange(cloud, mutated(share["token"]))  # a refused one too
    secret = share["token"].split(".")[1]
    signature = manifest["series"][0]["preview"]["url"].rsplit("X-Goog-Signature=", 1)[1]
    wait_for(lambda: any(line.get("event") == "share_used" and line.get("share") ==
                         share["share_id"] for line in cloud.log_lines("sign-link")),
             what="share_used log line")
    text = cloud.all_log_text()
    assert secret not in text and signature not in text
    own = (cloud.log_dir / f"{cloud.project}.sign-link.log").read_text()
    assert seeded.study_key not in own  # sign-link logs study ids shortened


# --- Rules -----------------------------------------------------------------------------------

def _rest_write(cloud, method, path, token, fields):
    url = (f"http://{cloud.env['FIRESTORE_EMULATOR_HOST']}/v1/projects/{cloud.project}"
           f"/databases/(default)/documents/{path}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, url, json={"fields": fields}, headers=headers, timeout=10)


def _owner_query(collection, uid):
    return {"from": [{"collectionId": collection}],
            "where": {"fieldFilter": {"field": {"fieldPath": "owner"}, "op": "EQUAL",
                                      "value": {"stringValue": uid}}}}


def test_rules_matrix_for_shares_and_access_records(cloud, owner):
    # Arrange: one share and its access record
    other = cloud.create_user()
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    share = create_share(cloud, owner, seeded.study_key)
    from google.cloud.firestore_v1.base_query import FieldFilter

    [record] = [r for r in cloud.clients().firestore.collection("access").where(
        filter=FieldFilter("owner", "==", owner.uid)).stream()]
    docs = {"shares": f"shares/{share['share_id']}", "access": f"access/{record.id}"}
    for collection, path in docs.items():
        # Read: owner only.
        assert cloud.firestore_rest(path, None).status_code == 403, path
        assert cloud.firestore_rest(path, other.id_token).status_code == 403, path
        assert cloud.firestore_rest(path, owner.id_token).status_code == 200, path
        # Queries: one's own, yes; someone else's, no.
        assert cloud.firestore_query("", _owner_query(collection, owner.uid),
                                     owner.id_token).status_code == 200
        assert cloud.firestore_query("", _owner_query(collection, owner.uid),
                                     other.id_token).status_code == 403
        assert cloud.firestore_query("", _owner_query(collection, owner.uid),
                                     None).status_code == 403
        # Writes: nobody, the owner included (append-only, server-written).
        fields = {"owner": {"stringValue": owner.uid}, "revoked": {"booleanValue": False}}
        for token in (None, other.id_token, owner.id_token):
            assert _rest_write(cloud, "PATCH", path, token, fields).status_code == 403
            assert _rest_write(cloud, "POST", collection, token, fields).status_code == 403
            url = (f"http://{cloud.env['FIRESTORE_EMULATOR_HOST']}/v1/projects/{cloud.project}"
                   f"/databases/(default)/documents/{path}")
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            assert requests.delete(url, headers=headers, timeout=10).status_code == 403
    assert cloud.clients().firestore.document(docs["access"]).get().exists


# --- The CLI ---------------------------------------------------------------------------------

def test_cli_link_share_shares_revoke_and_access_log(cloud, tmp_path, public_key):
    user = cloud.create_user()
    seeded = seed_study(cloud, user.uid, instances_per_series=(2, 1))
    env = cloud.cli_env(tmp_path / "home")

    def pacs(*args):
        proc = subprocess.run([sys.executable, "-m", "pacs_cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=120, cwd=config.ROOT)
        return proc

    def pacs_json(*args):
        proc = pacs(*args, "--json")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return json.loads(proc.stdout)

    pacs_json("login", "--email", user.email, "--password", user.password)
    # pacs link: previews and the first series' instance URLs; --all: every series
    linked = pacs_json("link", seeded.study_key)
    first, second = linked["series"]
    assert first["preview"]["url"] and len(first["instances"]) == 2
    assert "instances" not in second
    for row in first["instances"]:
        verify(row["url"], public_key, max_lifetime=TTL)
    everything = pacs_json("link", seeded.study_key, "--all")
    assert [len(s["instances"]) for s in everything["series"]] == [2, 1]
    human = pacs("link", seeded.study_key)
    assert human.returncode == 0 and "expire" in human.stdout and "http" in human.stdout
    # pacs share / shares / revoke
    shared = pacs_json("share", seeded.study_key, "--expires", "2h", "--max-views", "3")
    assert shared["url"].endswith("#" + shared["token"]) and shared["max_views"] == 3
    expires = datetime.fromisoformat(shared["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=2)
    ok(exchange(cloud, shared["token"]))
    listed = pacs_json("shares")["shares"]
    assert [s["share_id"] for s in listed] == [shared["share_id"]]
    assert listed[0]["views"] == 1 and listed[0]["status"] == "active"
    assert pacs_json("revoke", shared["share_id"])["status"] == "revoked"
    assert exchange(cloud, shared["token"]).status_code == 404
    # pacs access-log
    log = pacs_json("access-log")["records"]
    assert {r["kind"] for r in log} >= {"manifest", "series_urls", "share_created",
                                        "share_used", "share_revoked"}
    assert pacs("access-log").returncode == 0
    # Errors: an unknown study, a bad duration
    bad = pacs("link", secrets.token_hex(16), "--json")
    assert bad.returncode != 0 and json.loads(bad.stdout)["error"] == "not_found"
    assert pacs("share", seeded.study_key, "--expires", "soon").returncode != 0
