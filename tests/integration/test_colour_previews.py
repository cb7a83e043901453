"""Colour previews end to end: real colour files from pydicom's test data (RGB, JPEG 2000
YBR_RCT, YBR_FULL_422) uploaded through the real path (``create-upload``, the resumable
session, ingest, settle), then the owner's and a share holder's manifest from the real
``sign-link`` function: each series' preview URL is signed for the JPEG settle wrote and
fetches a colour JPEG."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from tests.colour_data import COLOUR_FILES, colour_zip
from tests.ingest_helpers import upload_bytes, wait_final, wait_settled
from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud

def fetch(url: str) -> requests.Response:
    """GET a signed URL from fake-gcs-server as issued (see tests/v4_verifier.py: an
    emulator layer started without ``-public-host`` needs the default public host)."""
    resp = requests.get(url, timeout=30)
    if resp.status_code == 404:
        resp = requests.get(url, timeout=30, headers={"Host": "storage.googleapis.com"})
    return resp


def _sign_link(cloud: LocalCloud, route: str, body: dict, headers=None) -> dict:
    resp = requests.post(f"{cloud.urls['sign-link']}/{route}", json=body, timeout=60,
                         headers=headers or {})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _assert_colour_jpeg(url: str, series_doc: dict, least_colour: float) -> None:
    assert url.split("?", 1)[0].endswith(f"{series_doc['preview']['object'].split('/')[-1]}")
    resp = fetch(url)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert resp.content[:3] == b"\xff\xd8\xff"  # a JPEG, not a PNG
    image = Image.open(io.BytesIO(resp.content))
    assert image.format == "JPEG" and image.mode == "RGB" and max(image.size) == 256
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[..., 0] - pixels[..., 1]).mean() > least_colour  # colour, not grey


def test_colour_previews_are_signed_in_the_manifest_and_fetch_the_jpeg(cloud):
    user = cloud.create_user(profile=True)
    upload_id = upload_bytes(cloud, user, colour_zip(), "colour.zip", "application/zip")
    assert wait_final(cloud, upload_id)["status"] == "complete"
    series_docs = wait_settled(cloud, user.uid, len(COLOUR_FILES))
    assert len(series_docs) == len(COLOUR_FILES)
    # Settle wrote every preview as a JPEG under the .jpg name.
    for doc in series_docs:
        preview = doc["preview"]
        assert preview["status"] == "ready", preview
        assert preview["media_type"] == "image/jpeg" and preview["object"].endswith(".jpg")

    studies = requests.get(cloud.urls["studies"] + "/", headers=user.headers(),
                           timeout=30).json()["studies"]
    assert sorted(s["StudyDescription"] for s in studies) == sorted(COLOUR_FILES)
    by_series = {(d["study_key"], d["SeriesInstanceUID"]): d for d in series_docs}
    for study in studies:
        least = COLOUR_FILES[study["StudyDescription"]][1]
        manifest = _sign_link(cloud, "manifest", {"study_id": study["id"]}, user.headers())
        [series] = manifest["series"]
        doc = by_series[(study["id"], series["SeriesInstanceUID"])]
        assert series["preview"]["status"] == "ready"
        assert series["preview"].get("url"), f"{study['StudyDescription']}: no preview URL"
        _assert_colour_jpeg(series["preview"]["url"], doc, least)

        # A share holder's manifest signs the same preview.
        share = _sign_link(cloud, "shares", {"study_id": study["id"]}, user.headers())
        shared = _sign_link(cloud, "share/manifest", {"token": share["token"]})
        _assert_colour_jpeg(shared["series"][0]["preview"]["url"], doc, least)
