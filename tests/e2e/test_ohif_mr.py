"""OHIF on an MR series (issue 15, "Tests with real clients"): from the study's page, "Open in
OHIF" shows a ten-slice MR (pydicom's real MR frames, tests/e2e/ohif_data.py) in headless
Chromium; the viewport renders, the wheel moves to another slice, and OHIF's Length tool
dragged across the image gives a measurement in mm equal to the dragged image pixels times
the series' PixelSpacing (0.3125 mm)."""

from __future__ import annotations

import math
import re

import pytest
import requests

from tests.e2e.conftest import ingest, signed_up_user
from tests.e2e.ohif_data import MR_SLICES, MR_SPACING, mr_series
from tests.e2e.viewer_data import series_zip
from tests.e2e.webstack import WEB, WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = WEB / "e2e" / "ohif-measure.mjs"


@pytest.fixture(scope="module")
def mr_study(web: WebStack, tmp_path_factory):
    """A user with the ten-slice MR series."""
    user = signed_up_user(web, "e2e-ohif-mr")
    path, count = series_zip(tmp_path_factory.mktemp("ohif-mr") / "mr.zip", mr_series())
    studies = ingest(web, user, path, count)
    assert len(studies) == 1 and count == MR_SLICES
    return user, studies[0]


def test_open_in_ohif_renders_the_mr_and_measures_a_length(web: WebStack, mr_study):
    user, study = mr_study
    out = run_node(SCRIPT, "ohif-mr", {"url": web.url, "email": user.email,
                                       "password": user.password, "studyId": study["id"]},
                   timeout=360)
    assert out.get("failure") is None, out
    uid = requests.get(f"{web.url}/api/studies/{study['id']}", headers=user.headers(),
                       timeout=30).json()["study"]["StudyInstanceUID"]
    assert out["href"] == f"/ohif/viewer?StudyInstanceUIDs={uid}"
    assert out["csp"] == [], out["csp"]
    assert out["dicomweb"] and all(r["bearer"] and r["status"] < 400 for r in out["dicomweb"])
    assert any("/frames/" in r["path"] for r in out["dicomweb"])
    assert out["tokenInUrl"] is False
    # The viewport shows the MR, and the wheel moves to another of its slices.
    first, wheel = out["first"], out["afterWheel"]
    assert first["lit"] > first["pixels"] * 0.01 and first["distinct"] > 16, first
    assert wheel["lit"] > wheel["pixels"] * 0.01 and wheel["checksum"] != first["checksum"], wheel
    # The Length tool's measurement: the dragged line in image pixels (Cornerstone's camera
    # maps the drag's ends to image coordinates) times the PixelSpacing, in mm.
    (x0, y0), (x1, y1) = (p[:2] for p in out["image"]["points"])
    dragged = math.hypot(x1 - x0, y1 - y0)
    assert 8 < dragged < 64, out["image"]  # inside the 64 x 64 image, across many pixels
    expected = dragged * MR_SPACING
    lengths = [m for m in out["measurements"] if m["toolName"] == "Length"]
    assert len(lengths) == 1, out["measurements"]
    assert lengths[0]["units"] == ["mm"], lengths
    assert lengths[0]["lengths"][0] == pytest.approx(expected, rel=0.02), (lengths, expected)
    # The measurement panel lists it with its value in mm.
    shown = [float(v) for v in re.findall(r"(\d+(?:\.\d+)?)\s*mm\b", out["panel"] or "")]
    assert any(v == pytest.approx(expected, rel=0.02, abs=0.05) for v in shown), (
        out["panel"], expected)
