"""Share paging checks a view string against the share document, not only its MAC.

A view string (``POST /share/series``) is ``{share_id}.{view number}.{expiry}.{MAC}`` under
``PACS_HASH_KEY``. Whoever holds the key (the public development key, had a deployed
function fallen back to it) can mint any view: one expiring in 2100, or with a view number
the share never issued, which would page an exhausted share's series forever and bypass
``max_views``. Here the test holds the test project's key, forges such views through the
real ``sign-link`` function, and sees them refused; the genuine views keep working.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import UTC, datetime, timedelta

import pydicom
import pytest
import requests
from pacs import ids
from pacs.links import shares
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.localcloud_fixture import LocalCloud, User

pytestmark = pytest.mark.localcloud


@pytest.fixture
def owner(cloud: LocalCloud) -> User:
    return cloud.create_user()


def _seed_study(cloud: LocalCloud, uid: str) -> tuple[str, str]:
    """One study of one series of one instance, as ingest would leave it (objects under
    their canonical names, documents by the admin client). Returns (study, series)."""
    fs, storage = cloud.clients().firestore, cloud.clients().storage
    study, series, instance = (secrets.token_hex(16) for _ in range(3))
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    name = ids.instance_object(uid, study, instance)
    blob = storage.bucket(cloud.buckets["instances"]).blob(name)
    blob.upload_from_string(data, content_type="application/dicom")
    study_ref = fs.collection("studies").document(study)
    series_ref = study_ref.collection("series").document(series)
    series_ref.collection("instances").document(instance).set({
        "owner": uid, "study_key": study, "series_key": series,
        "SOPInstanceUID": ds.SOPInstanceUID, "InstanceNumber": 1, "object": name,
        "generation": str(blob.generation), "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest()})
    series_ref.set({"owner": uid, "study_key": study, "Modality": "CT", "SeriesNumber": 1,
                    "instance_count": 1, "preview": {"status": "none"}})
    study_ref.set({"owner": uid, "StudyDescription": "share limits", "series_count": 1,
                   "instance_count": 1, "modalities": ["CT"]})
    return study, series


def _post(cloud: LocalCloud, route: str, body: dict, user: User | None = None
          ) -> requests.Response:
    return requests.post(f"{cloud.urls['sign-link']}/{route}", json=body, timeout=60,
                         headers=user.headers() if user else {})


def _share(cloud: LocalCloud, owner: User, study: str, **limits) -> dict:
    resp = _post(cloud, "shares", {"study_id": study, **limits}, owner)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _exchange(cloud: LocalCloud, token: str) -> dict:
    resp = _post(cloud, "share/manifest", {"token": token})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _page(cloud: LocalCloud, token: str, view: str, series: str) -> requests.Response:
    return _post(cloud, "share/series", {"token": token, "view": view, "series_id": series})


def _forge(cloud: LocalCloud, share_id: str, number: int, expires_at: datetime) -> str:
    """A view string with a valid MAC, made with the project's key (as an attacker holding
    the development key could)."""
    return shares.make_view(cloud.settings().hash_key, share_id, number, expires_at)


def _refused(resp: requests.Response) -> None:
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert body["error"] == "view_not_valid", body
    assert "open the share link again" in body["message"]
    assert "instances" not in body


def test_a_forged_view_expiring_in_2100_is_refused(cloud, owner):
    study, series = _seed_study(cloud, owner.uid)
    share = _share(cloud, owner, study)  # no view limit, expires in 24 h
    manifest = _exchange(cloud, share["token"])
    assert _page(cloud, share["token"], manifest["view"], series).status_code == 200
    forged = _forge(cloud, share["share_id"], 1, datetime(2100, 1, 1, tzinfo=UTC))
    _refused(_page(cloud, share["token"], forged, series))
    # Just past the share's own expiry is refused too; at the manifest's expiry it passes.
    share_end = datetime.fromisoformat(share["expires_at"].replace("Z", "+00:00"))
    _refused(_page(cloud, share["token"],
                   _forge(cloud, share["share_id"], 1, share_end + timedelta(seconds=2)), series))


def test_a_forged_view_number_beyond_max_views_is_refused_on_an_exhausted_share(cloud, owner):
    study, series = _seed_study(cloud, owner.uid)
    share = _share(cloud, owner, study, max_views=2)
    first = _exchange(cloud, share["token"])
    expires = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    # Not issued yet: view 2 of 2 before the second exchange.
    _refused(_page(cloud, share["token"], _forge(cloud, share["share_id"], 2, expires), series))
    _exchange(cloud, share["token"])
    assert _post(cloud, "share/manifest", {"token": share["token"]}).status_code == 404
    # Exhausted: a view number past max_views would page it forever.
    for number in (3, 999_999_999):
        _refused(_page(cloud, share["token"], _forge(cloud, share["share_id"], number, expires),
                       series))
    # The views the share issued still finish their series after it is used up.
    page = _page(cloud, share["token"], first["view"], series)
    assert page.status_code == 200, page.text
    assert len(page.json()["instances"]) == 1


def test_a_view_of_another_share_is_refused_as_before(cloud, owner):
    study, series = _seed_study(cloud, owner.uid)
    one, other = _share(cloud, owner, study), _share(cloud, owner, study)
    view = _exchange(cloud, other["token"])["view"]
    resp = _page(cloud, one["token"], view, series)
    assert resp.status_code == 404 and resp.json()["error"] == "not_found", resp.text
