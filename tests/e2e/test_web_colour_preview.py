"""Colour previews in the browser: real colour files (RGB, JPEG 2000 YBR_RCT, YBR_FULL_422)
ingested through the real upload path, then the studies list and the viewer of each study
in headless Chromium must show its preview (a JPEG, decoded: naturalWidth > 0).
Screenshots: test-artifacts/colour-preview-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.colour_data import COLOUR_FILES, colour_zip
from tests.e2e.conftest import ingest, signed_up_user
from tests.e2e.webstack import WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = Path(__file__).with_name("colour_preview.mjs")


def _run(web: WebStack, args: dict) -> dict:
    return run_node(SCRIPT, "colour-preview", {"url": web.url, **args}, timeout=300)


def test_the_studies_list_and_viewer_show_colour_previews(web, tmp_path):
    user = signed_up_user(web, "e2e-colour")
    archive = tmp_path / "colour.zip"
    archive.write_bytes(colour_zip())
    studies = ingest(web, user, archive, len(COLOUR_FILES))
    assert sorted(s["StudyDescription"] for s in studies) == sorted(COLOUR_FILES)
    ids = [s["id"] for s in studies]

    out = _run(web, {"email": user.email, "password": user.password, "studies": ids})
    for study in studies:
        for where in ("list", "viewer"):
            shown = out[where][study["id"]]
            assert len(shown) == 1, f"{study['StudyDescription']}: no preview image in {where}"
            image = shown[0]
            assert image["complete"] and image["width"] > 0, (study["StudyDescription"], where,
                                                               image)
            assert max(image["width"], image["height"]) == 256, image
            assert ".jpg?" in image["src"], image["src"]  # the JPEG settle wrote
    assert not out["errors"], out["errors"]
