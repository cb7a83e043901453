"""Single-use download links for the study ZIP (the web page's "Download (ZIP)"): made by
the signed-in owner, pointing at the function's own URL, opened once without any header,
expiring, and answering 404 alike for every token that does not open a study."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from pacs import ids
from pacs.dicomweb import downloads
from pydicom.data import get_testdata_file

from tests.dicomweb_helpers import ingest, read_original
from tests.keys_helpers import bearer, new_key
from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud


@pytest.fixture(scope="module")
def owners(cloud: LocalCloud):
    alice, bob = cloud.create_user(profile=True), cloud.create_user(profile=True)
    originals = [read_original(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")]
    ingest(cloud, alice, originals)
    return alice, bob, originals


def make_link(cloud: LocalCloud, headers: dict[str, str], study_uid: str,
              prefix: str = "") -> requests.Response:
    url = f"{cloud.urls['dicomweb']}{prefix}/studies/{study_uid}/download-link"
    return requests.post(url, headers=headers, timeout=60)


def test_a_link_opens_the_zip_once_without_credentials(cloud, owners, tmp_path: Path):
    alice, _, originals = owners
    ct = originals[0]
    resp = make_link(cloud, alice.headers(), ct.ds.StudyInstanceUID, prefix="/dicomweb")
    assert resp.status_code == 201, resp.text
    link = resp.json()
    # The function's own URL (locally: the function process), never the Hosting origin.
    assert link["url"].startswith(cloud.urls["dicomweb"].rstrip("/") + "/dicomweb/downloads/")
    expires = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(
        seconds=downloads.LINK_SECONDS)
    token = link["url"].rsplit("/", 1)[1]
    # Stored only as its hash.
    fs = cloud.clients().firestore
    stored = [s for s in fs.collection(downloads.COLLECTION).stream()
              if s.to_dict()["owner"] == alice.uid]
    assert stored and all(token not in (s.id, *map(str, s.to_dict().values())) for s in stored)
    got = requests.get(link["url"], timeout=120)  # no Authorization header
    assert got.status_code == 200, got.text
    assert got.headers["Content-Type"] == "application/zip"
    assert got.headers["Content-Disposition"].startswith("attachment")
    archive = tmp_path / "ct.zip"
    archive.write_bytes(got.content)
    assert subprocess.run(["unzip", "-t", str(archive)], capture_output=True,
                          check=False).returncode == 0
    again = requests.get(link["url"], timeout=60)
    assert again.status_code == 404 and again.json()["error"] == "not_found"


def test_every_token_that_opens_nothing_is_the_same_404(cloud, owners):
    alice, bob, originals = owners
    ct, mr = (o.ds.StudyInstanceUID for o in originals)
    for user, uid in ((bob, ct), (alice, "1.2.3.4"), (alice, "x")):
        resp = make_link(cloud, user.headers(), uid)
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    assert make_link(cloud, {}, ct).status_code == 401
    base = cloud.urls["dicomweb"]
    for token in ("short", "a" * 43, "a.b" + "c" * 40, "é" * 43):
        assert requests.get(f"{base}/downloads/{token}", timeout=30).status_code == 404
    # Expired.
    link = make_link(cloud, alice.headers(), mr).json()["url"]
    fs = cloud.clients().firestore
    for snap in fs.collection(downloads.COLLECTION).stream():
        if snap.to_dict()["owner"] == alice.uid:
            snap.reference.update({"expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    assert requests.get(link, timeout=30).status_code == 404
    # The study deleted after the link was made.
    link = make_link(cloud, alice.headers(), mr).json()["url"]
    deleted = requests.delete(f"{base}/studies/{mr}", headers=alice.headers(), timeout=120)
    assert deleted.status_code == 200, deleted.text
    # The study's deletion deletes its links (a deleter of pacs.studies.deletion).
    assert deleted.json()["deletion"]["counts"].get("download_links") == 1
    assert not [s for s in fs.collection(downloads.COLLECTION).stream()
                if s.to_dict()["owner"] == alice.uid]
    assert requests.get(link, timeout=30).status_code == 404
    assert make_link(cloud, alice.headers(), mr).status_code == 404


def test_api_keys_retrieve_directly_not_through_links(cloud, owners):
    alice, _, originals = owners
    key = new_key(cloud, alice, scope="read-write")["key"]
    resp = make_link(cloud, bearer(key), originals[0].ds.StudyInstanceUID)
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    zipped = requests.get(f"{cloud.urls['dicomweb']}/studies/{originals[0].ds.StudyInstanceUID}",
                          headers={**bearer(key), "Accept": "application/zip"}, timeout=60)
    assert zipped.status_code == 200 and zipped.headers["Content-Type"] == "application/zip"


def test_a_restricted_study_is_neither_retrieved_nor_linked(cloud, owners):
    alice, _, originals = owners
    ct = originals[0].ds.StudyInstanceUID
    key = ids.study_key(cloud.settings().hash_key, alice.uid, ct)
    study = cloud.clients().firestore.collection("studies").document(key)
    url = f"{cloud.urls['dicomweb']}/studies/{ct}"
    link = make_link(cloud, alice.headers(), ct).json()["url"]  # made before the restriction
    study.update({"restricted": True})
    try:
        for accept in ("multipart/related", "application/zip"):
            resp = requests.get(url, headers={**alice.headers(), "Accept": accept}, timeout=60)
            assert resp.status_code == 403 and resp.json()["error"] == "restricted"
        refused = make_link(cloud, alice.headers(), ct)
        assert refused.status_code == 403 and refused.json()["error"] == "restricted"
        assert requests.get(link, timeout=30).status_code == 403
    finally:
        study.update({"restricted": False})
    assert requests.get(url, headers=alice.headers(), timeout=60).status_code == 200
