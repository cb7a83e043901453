"""The API-key and DICOMweb-access tests' world and calls: Alice owns two real studies
(pydicom's ``CT_small.dcm`` and ``MR_small.dcm``), Bob owns his own copy of the CT study
(the same UIDs), both ingested through the upload path."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file

from tests.dicomweb_helpers import Original, ingest, read_original
from tests.localcloud_fixture import LocalCloud, User
from tests.privacy_helpers import call, ok, sign_link


class KeysWorld:
    """Alice (CT and MR studies) and Bob (his copy of the CT study)."""

    def __init__(self, cloud: LocalCloud):
        self.cloud = cloud
        self.ct: Original = read_original(get_testdata_file("CT_small.dcm"))
        self.mr: Original = read_original(get_testdata_file("MR_small.dcm"))
        self.alice: User = cloud.create_user(profile=True)
        self.bob: User = cloud.create_user(profile=True)
        ingest(cloud, self.alice, [self.ct, self.mr])
        ingest(cloud, self.bob, [self.ct])

    @property
    def url(self) -> str:
        return self.cloud.urls["dicomweb"]

    def study_key(self, user: User, original: Original) -> str:
        from pacs import ids

        return ids.study_key(self.cloud.settings().hash_key, user.uid,
                             original.ds.StudyInstanceUID)

    def client(self, headers: dict[str, str]) -> DICOMwebClient:
        return DICOMwebClient(url=self.url, headers=headers)

    def get(self, path: str, headers: dict[str, str], **params: Any) -> requests.Response:
        return requests.get(f"{self.url}/{path.lstrip('/')}", headers=headers, params=params,
                            timeout=60)


def create_key(cloud: LocalCloud, user: User, scope: str = "read", name: str = "nightly",
               days: int | None = None, token: str | None = None) -> requests.Response:
    body: dict[str, Any] = {"name": name, "scope": scope}
    if days is not None:
        body["expires_in_days"] = days
    return call(cloud, "keys", user, body=body, token=token)


def new_key(cloud: LocalCloud, user: User, scope: str = "read", **kw: Any) -> dict[str, Any]:
    return ok(create_key(cloud, user, scope, **kw), 201)


def list_keys(cloud: LocalCloud, user: User) -> dict[str, Any]:
    return ok(call(cloud, "keys", user, method="GET"))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def restrict(cloud: LocalCloud, user: User, restricted: bool) -> None:
    ok(call(cloud, "restrict", user, body={"restricted": restricted}))


def share(cloud: LocalCloud, user: User, study_key: str, **limits: Any) -> dict[str, Any]:
    return ok(sign_link(cloud, "shares", user, {"study_id": study_key, **limits}))


def open_share(cloud: LocalCloud, token: str) -> requests.Response:
    """``POST /share/manifest``: counts a view and returns it."""
    return sign_link(cloud, "share/manifest", None, {"token": token})


def share_headers(token: str, view: str) -> dict[str, str]:
    return {"X-Share-Token": token, "X-Share-View": view}


def opened_share(world: KeysWorld, authorization: bool = False, **limits: Any
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """Alice shares her CT study and opens it once: the share and its DICOMweb headers
    (``X-Share-*``, or ``Authorization: Share <token> <view>`` as OHIF sends it)."""
    created = share(world.cloud, world.alice, world.study_key(world.alice, world.ct), **limits)
    view = ok(open_share(world.cloud, created["token"]))["view"]
    if authorization:
        return created, {"Authorization": f"Share {created['token']} {view}"}
    return created, share_headers(created["token"], view)


# Long enough to create and open a share on a loaded machine (2 s was not, at load ~110).
SHORT_SHARE_SECONDS = 10


def wait_until_expired(created: dict[str, Any]) -> None:
    """Sleep past the expiry the share itself states."""
    expires_at = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.0)
