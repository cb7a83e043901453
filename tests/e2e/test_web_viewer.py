"""The viewer in the browser: transfer syntaxes dwv cannot read (transcoded in a worker) and
moving through a series of several slices."""

from __future__ import annotations

import pytest

from tests.e2e.viewer_data import DEFLATED_NAME, JPEG_LS_NAME, SLICES, SLICES_NAME
from tests.e2e.webstack import run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]


def _csp_errors(errors: list[str]) -> list[str]:
    return [e for e in errors if "Content Security Policy" in e or "Refused to" in e]


def test_jpeg_ls_and_deflated_are_decoded_in_the_browser(web, viewer_account):
    user, studies = viewer_account
    out = run_scenario("decode", web, {"email": user.email, "password": user.password, "studies": [
        {"id": studies[JPEG_LS_NAME]["id"], "label": "jpeg-ls"},
        {"id": studies[DEFLATED_NAME]["id"], "label": "deflated"}]})
    for label in ("jpeg-ls", "deflated"):
        shown = out[label]
        assert shown["notice"] is None, (label, shown["notice"])
        assert shown["stats"]["litFraction"] > 0.05 and shown["stats"]["std"] > 5, (label, shown)
        assert shown["status"].startswith("Image 1 of 1"), shown["status"]
    assert out["jpeg-ls"]["stats"]["hash"] != out["deflated"]["stats"]["hash"]
    assert not _csp_errors(out["errors"]), out["errors"]
    assert not out["errors"], out["errors"]


def test_keyboard_wheel_and_slider_move_through_slices(web, viewer_account):
    user, studies = viewer_account
    out = run_scenario("slices", web, {"email": user.email, "password": user.password,
                                       "studyId": studies[SLICES_NAME]["id"], "slices": SLICES})
    first, arrow, wheel, last = out["first"], out["arrow"], out["wheel"], out["last"]
    assert first["status"] == f"Image 1 of {SLICES}" and first["slider"] == "0"
    assert arrow["status"] == f"Image 2 of {SLICES}" and arrow["slider"] == "1"
    assert wheel["status"] in (f"Image 1 of {SLICES}", f"Image 3 of {SLICES}"), wheel
    assert last["status"] == f"Image {SLICES} of {SLICES}" and last["slider"] == str(SLICES - 1)
    # Each move shows another slice's pixels.
    hashes = [first["hash"], arrow["hash"], wheel["hash"], last["hash"]]
    assert all(a != b for a, b in zip(hashes, hashes[1:], strict=False)), hashes
    assert "dwv-layer-group" in out["focused"], "the viewer keeps the keyboard focus"
    assert not _csp_errors(out["errors"]), out["errors"]
