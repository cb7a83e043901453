"""The viewer in the browser: transfer syntaxes dwv cannot read (transcoded in a worker),
moving through a series of several slices (wheel, keys, slider), a file with megabytes of
zero bytes after its data set, and a big series on a throttled connection."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.viewer_data import (
    BIG_NAME,
    DEFLATED_NAME,
    JPEG_LS_NAME,
    RLE_NAME,
    RLE_SLICES,
    SLICES,
    SLICES_NAME,
    TRAILER_NAME,
    big_ct_series,
    series_zip,
)
from tests.e2e.viewer_scenarios import run_viewer_scenario
from tests.e2e.webstack import run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

BIG_SLICES = 200
MBIT_PER_SECOND = 50


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


def test_wheel_moves_through_slices_at_once_in_every_tool(web, viewer_account):
    """Right after the first image shows, with no click on it: the wheel moves to the next and
    the previous image (down = next), in the default tool and in zoom/pan; then the keyboard
    and the slider. The page itself does not scroll."""
    user, studies = viewer_account
    out = run_viewer_scenario("wheel", web, {"email": user.email, "password": user.password,
                                             "studyId": studies[SLICES_NAME]["id"],
                                             "slices": SLICES})
    steps = [out[k] for k in ("first", "wheelDown", "wheelUp", "zoomTool", "arrow", "last")]
    assert [s["status"] for s in steps] == [f"Image {n} of {SLICES}" for n in (1, 2, 1, 2, 3, SLICES)]
    assert [s["slider"] for s in steps] == [str(n - 1) for n in (1, 2, 1, 2, 3, SLICES)]
    # Each move shows another slice's pixels, and the wheel never scrolled the page.
    hashes = [s["hash"] for s in steps]
    assert all(a != b for a, b in zip(hashes, hashes[1:], strict=False)), hashes
    assert {s["scrollY"] for s in steps[:4]} == {steps[0]["scrollY"]}, steps
    assert "dwv-layer-group" in out["focused"], "the viewer keeps the keyboard focus"
    assert not _csp_errors(out["errors"]), out["errors"]


def test_a_compressed_series_is_assembled_as_it_arrives(web, viewer_account):
    """An RLE series: each slice is decoded in dwv's worker, then copied into the series'
    volume; it opens at its first image and the wheel and keys move through it."""
    user, studies = viewer_account
    out = run_viewer_scenario("wheel", web, {"email": user.email, "password": user.password,
                                             "studyId": studies[RLE_NAME]["id"],
                                             "slices": RLE_SLICES})
    steps = [out[k] for k in ("first", "wheelDown", "wheelUp", "zoomTool", "arrow", "last")]
    assert [s["status"] for s in steps] == [f"Image {n} of {RLE_SLICES}"
                                            for n in (1, 2, 1, 2, 3, RLE_SLICES)]
    hashes = [s["hash"] for s in steps]
    assert all(a != b for a, b in zip(hashes, hashes[1:], strict=False)), hashes
    assert not out["errors"], out["errors"]


def test_zero_trailer_after_the_data_set_is_not_parsed(web, viewer_account):
    """The first file of the series ends in 2.4 MB of zero bytes: the first image shows and
    dwv is not handed the zeros (which it reads as (0000,0000) elements, one warning each)."""
    user, studies = viewer_account
    out = run_viewer_scenario("trailer", web, {"email": user.email, "password": user.password,
                                               "studyId": studies[TRAILER_NAME]["id"]})
    print(f"trailer series: first image after {out['ms']} ms, {out['warnings']} warnings")
    assert out["stats"]["litFraction"] > 0.1, out["stats"]
    assert out["status"].startswith("Image 1 of 3"), out["status"]
    assert out["warnings"] < 10, (out["warnings"], out["warningSamples"])
    assert not out["errors"], out["errors"]


@pytest.fixture(scope="module")
def big_series(web, tmp_path_factory):
    """A user with one CT series of BIG_SLICES 512x512 slices (105 MB), ingested like the
    other viewer studies."""
    from tests.e2e.conftest import ingest

    user = web.cloud.create_user(f"e2e-big-{uuid.uuid4().hex[:10]}@example.test")
    web.cloud.confirm_adult(user)
    path, instances = series_zip(tmp_path_factory.mktemp("big") / "big.zip",
                                 big_ct_series(BIG_SLICES), "big")
    studies = ingest(web, user, path, instances)
    assert [s["PatientName"] for s in studies] == [BIG_NAME]
    return user, studies[0]


def test_big_series_shows_its_first_image_before_the_rest_arrives(web, big_series):
    """At 50 Mbit/s (Chromium's network emulation) the 200 slices take about 17 s to arrive.
    The series' first image (in viewing order, named so by the status) shows while most are
    still on their way, a count says how many are in, and leaving the series cancels the
    downloads in flight."""
    user, study = big_series
    out = run_viewer_scenario("progressive", web, {
        "email": user.email, "password": user.password, "studyId": study["id"],
        "mbitPerSecond": MBIT_PER_SECOND, "slices": BIG_SLICES})
    print(f"{BIG_SLICES} slices at {MBIT_PER_SECOND} Mbit/s: click to first image "
          f"{out['firstImageMs']} ms ({out['doneAtFirst']} slices in)")
    assert out["doneAtFirst"] < BIG_SLICES // 2, out
    assert re.fullmatch(rf"Loaded \d+ of {BIG_SLICES} images", (out["countText"] or "").strip()), out
    assert out["status"].startswith(f"Image 1 of {BIG_SLICES}"), out["status"]
    # Leaving (while images are in flight): nothing new starts, what was in flight is
    # aborted, nothing more completes.
    leaving = {k: out[k] for k in ("clickedAt", "leftAt", "inFlightAtClick", "abortedAfterClick",
                                   "startedAfterLeave", "doneAfterLeave", "inFlightAtEnd",
                                   "started", "allDoneMs")}
    assert out["inFlightAtClick"] >= 1, leaving
    assert out["startedAfterLeave"] == 0 and out["doneAfterLeave"] == 0, leaving
    assert out["abortedAfterClick"] >= 1 and out["inFlightAtEnd"] == 0, leaving
    print(leaving)
    assert out["started"] < BIG_SLICES, leaving
    assert not _csp_errors(out["errors"]), out["errors"]


def test_a_series_bigger_than_the_memory_budget_is_held_in_a_window(web, big_series):
    """On a device that reports 256 MB (navigator.deviceMemory 0.25), the viewer's budget is
    32 MiB: 64 of the 200 slices (512 kB each). Going to the last image holds the 64 around it
    instead; each slice is fetched once."""
    user, study = big_series
    out = run_viewer_scenario("window", web, {
        "email": user.email, "password": user.password, "studyId": study["id"],
        "deviceMemory": 0.25, "slices": BIG_SLICES})
    first, last, back = out["first"], out["last"], out["back"]
    assert first["status"] == f"Image 1 of {BIG_SLICES}" and first["sliderMax"] == str(BIG_SLICES - 1)
    assert (first["count"] or "").startswith(f"Loaded 64 of 64 images (images 1–64 of {BIG_SLICES} "), first
    assert first["requests"] == {"started": 64, "done": 64, "failed": 0}, first
    assert last["status"] == f"Image {BIG_SLICES} of {BIG_SLICES}", last
    assert (last["count"] or "").startswith(f"Loaded 64 of 64 images (images 137–200 of {BIG_SLICES} "), last
    assert last["requests"] == {"started": 128, "done": 128, "failed": 0}, last
    assert last["hash"] != first["hash"]
    assert back["status"] == f"Image {BIG_SLICES - 1} of {BIG_SLICES}", back
    assert not out["errors"], out["errors"]
