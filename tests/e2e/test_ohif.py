"""The OHIF Viewer under /ohif/ (issue 15): served by the local Hosting stand-in with its own
headers (not the site-wide ones), and, in headless Chromium, opened from a study's page on a
CT series: it reads this site's DICOMweb with the session's ID token as the bearer (never in
a URL), the viewport renders the image, and the wheel moves to another slice."""

from __future__ import annotations

import json
import re

import pytest
import requests

from localcloud import config, hosting
from tests.e2e.conftest import ingest, signed_up_user
from tests.e2e.viewer_data import SLICES, series_zip, slice_series
from tests.e2e.webstack import WEB, WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

OHIF = config.ROOT / "web" / "dist" / "ohif"
SCRIPT = WEB / "e2e" / "ohif.mjs"
SECTION = json.loads((config.ROOT / "firebase.json").read_text())["hosting"]


def csp(value: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in value.split(";") if d.strip()}


def test_ohif_has_its_own_headers_and_the_site_keeps_its_own():
    site = hosting.headers_for("/studies/abc", SECTION)
    viewer = hosting.headers_for("/ohif/viewer", SECTION)
    for path in ("/ohif", "/ohif/", "/ohif/app-config.js", "/ohif/assets/x.png"):
        assert hosting.headers_for(path, SECTION) == viewer, path
    for path in ("/", "/index.html", "/ohifx", "/o", "/assets/index-1.js", "/viewer/abc"):
        assert hosting.headers_for(path, SECTION)["Content-Security-Policy"] == \
            site["Content-Security-Policy"], path
    ours = csp(viewer["Content-Security-Policy"])
    assert ours["script-src"] == ["'self'", "'wasm-unsafe-eval'"], "no inline script, no eval"
    assert ours["default-src"] == ["'self'"] and ours["object-src"] == ["'none'"]
    assert ours["frame-ancestors"] == ["'none'"] and "upgrade-insecure-requests" in ours
    assert not any(src.startswith("http") and "googleapis" not in src
                   for src in ours["connect-src"]), "DICOMweb is same-origin"
    assert viewer["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert viewer["Cross-Origin-Opener-Policy"] == "same-origin"
    assert viewer["X-Frame-Options"] == "DENY" and viewer["Referrer-Policy"] == "no-referrer"
    # The web client's policy is unchanged by OHIF's needs.
    assert "'unsafe-inline'" not in site["Content-Security-Policy"]
    assert "Cross-Origin-Embedder-Policy" not in site
    rewrites = [r for r in SECTION["rewrites"] if "destination" in r]
    assert rewrites == [{"source": "/ohif/**", "destination": "/ohif/index.html"},
                        {"source": "**", "destination": "/index.html"}]


def test_local_hosting_serves_ohif_under_its_base(web: WebStack):
    assert (OHIF / "index.html").is_file(), "make web builds web/dist/ohif"
    page = requests.get(web.url + "/ohif/viewer?StudyInstanceUIDs=1.2.3", timeout=30)
    assert page.status_code == 200 and '<div id="root">' in page.text
    assert page.text == (OHIF / "index.html").read_text()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'")
    assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    config_js = requests.get(web.url + "/ohif/app-config.js", timeout=30)
    assert "javascript" in config_js.headers["Content-Type"] and "pacsOhifConfig" in config_js.text
    bundle = re.search(r'src="/ohif/(app\.bundle\.[0-9a-f]+\.js)"', page.text).group(1)
    served = requests.get(f"{web.url}/ohif/{bundle}", timeout=60)
    assert served.status_code == 200 and '__webpack_require__.p = "/ohif/"' in served.text
    wasm = next(OHIF.glob("*.wasm"))
    assert requests.get(f"{web.url}/ohif/{wasm.name}", timeout=60).headers[
        "Content-Type"] == "application/wasm"
    notice = requests.get(web.url + "/ohif/third-party-licences.txt", timeout=30)
    assert notice.status_code == 200 and "shepherd.js" in notice.text
    # Left out of the build: Hosting's fallback serves OHIF's page, not the file.
    assert "ort.min.js" not in requests.get(web.url + "/ohif/ort/ort.min.js", timeout=30).text[:200]
    # The web client is unaffected: its own page and headers at /viewer/….
    client = requests.get(web.url + "/viewer/abc", timeout=30)
    assert '<div id="app">' in client.text
    assert "Cross-Origin-Embedder-Policy" not in client.headers


@pytest.fixture(scope="module")
def ct_study(web: WebStack, tmp_path_factory):
    """A user with a five-slice CT series (pixels differ visibly per slice)."""
    user = signed_up_user(web, "e2e-ohif")
    path, count = series_zip(tmp_path_factory.mktemp("ohif") / "ct.zip", slice_series())
    studies = ingest(web, user, path, count)
    assert len(studies) == 1 and count == SLICES
    return user, studies[0]


def test_open_in_ohif_renders_the_ct_with_the_session_token(web: WebStack, ct_study):
    user, study = ct_study
    out = run_node(SCRIPT, "ohif", {"url": web.url, "email": user.email,
                                    "password": user.password, "studyId": study["id"],
                                    "wheel": True}, timeout=300)
    assert out.get("failure") is None, out
    # No session: straight to sign-in (and back here after it), nothing asked of DICOMweb.
    assert "/signin?next=%2Fohif%2Fviewer%3FStudyInstanceUIDs%3D1.2.3" in out["anonymous"]["url"]
    assert out["anonymous"]["dicomweb"] == 0
    uid = requests.get(f"{web.url}/api/studies/{study['id']}", headers=user.headers(),
                       timeout=30).json()["study"]["StudyInstanceUID"]
    assert out["href"] == f"/ohif/viewer?StudyInstanceUIDs={uid}"
    assert out["csp"] == [], "nothing refused by the Content-Security-Policy"
    assert out["crossOriginIsolated"] is True
    # Every DICOMweb request carried the session's token as the bearer; none in any URL.
    assert out["dicomweb"] and all(r["bearer"] for r in out["dicomweb"]), out["dicomweb"]
    assert out["tokenInUrl"] is False
    assert all(r["status"] < 400 for r in out["dicomweb"]), out["dicomweb"]
    assert any("/metadata" in r["path"] for r in out["dicomweb"])
    assert any("/frames/" in r["path"] for r in out["dicomweb"])
    # Only this site was asked for anything.
    assert out["requestHosts"] == [web.url.split("//", 1)[1]], out["requestHosts"]
    # The viewport shows the image, and the wheel moves to another slice.
    first = out["first"]
    assert first and first["lit"] > first["pixels"] * 0.01 and first["distinct"] > 16, first
    wheel = out["afterWheel"]
    assert (wheel["width"], wheel["height"]) == (first["width"], first["height"])
    assert wheel["lit"] > wheel["pixels"] * 0.01 and wheel["checksum"] != first["checksum"], wheel
    # ?token= in the viewer's URL: dropped before OHIF reads it; the session's token is sent.
    forged = out["forged"]
    assert "token=" not in forged["url"] and forged["requests"] > 0, forged
    assert forged["forgedBearer"] == 0 and forged["bearer"] == forged["requests"], forged
    assert out["forgedFirst"]["lit"] > out["forgedFirst"]["pixels"] * 0.01
