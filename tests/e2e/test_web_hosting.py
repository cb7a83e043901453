"""The hosting configuration: security headers, rewrites to the functions, the single-page
fallback, the runtime config, and the Auth emulator bridge of the local hosting server."""

from __future__ import annotations

import json
import re

import pytest
import requests

from localcloud import config, hosting

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

FIREBASE = json.loads((config.ROOT / "firebase.json").read_text())


def csp_of(section: dict) -> dict[str, list[str]]:
    value = hosting.headers_for("/index.html", section)["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in value.split(";") if d.strip()}


def test_production_headers_are_strict():
    section = FIREBASE["hosting"]
    headers = hosting.headers_for("/index.html", section)
    csp = csp_of(section)
    assert csp["default-src"] == ["'self'"]
    # No inline script and no JavaScript eval; 'wasm-unsafe-eval' lets the viewer compile
    # its JPEG-LS decoder (WebAssembly) and nothing else.
    assert csp["script-src"] == ["'self'", "'wasm-unsafe-eval'"], "no inline or eval scripts"
    assert "'unsafe-inline'" not in " ".join(sum(csp.values(), []))
    assert "'unsafe-eval'" not in " ".join(sum(csp.values(), []))
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"]
    assert "upgrade-insecure-requests" in csp
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "camera=()" in headers["Permissions-Policy"]
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    # Hashed assets are immutable; everything else is revalidated.
    assert "immutable" in hosting.headers_for("/assets/index-abc.js", section)["Cache-Control"]
    assert hosting.headers_for("/index.html", section)["Cache-Control"] == "no-cache"


def test_every_api_rewrite_names_a_deployed_http_function():
    http = {f["name"] for f in config.function_table() if f["trigger"]["type"] == "http"}
    rewrites = FIREBASE["hosting"]["rewrites"]
    assert rewrites[-1] == {"source": "**", "destination": "/index.html"}
    # The OHIF Viewer's own single-page fallback (tests/e2e/test_ohif.py).
    assert rewrites[-2] == {"source": "/ohif/**", "destination": "/ohif/index.html"}
    for rewrite in rewrites[:-2]:
        # The JSON API under /api/; DICOMweb (docs/dicomweb.md) under its own prefix.
        assert rewrite["source"].startswith("/api/") or rewrite["source"] == "/dicomweb/**"
        assert rewrite["function"]["functionId"] in http


def test_built_page_has_no_inline_script():
    index = (config.ROOT / "web" / "dist" / "index.html").read_text()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", index, re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)


def test_local_server_serves_app_config_and_headers(web):
    page = requests.get(web.url + "/studies/abc", timeout=10)  # a client-side route
    assert page.status_code == 200 and '<div id="app">' in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval';" in csp and "frame-ancestors 'none'" in csp
    # Locally the emulators' origins are allowed too; production's file is unchanged.
    storage = web.cloud.env["STORAGE_EMULATOR_HOST"]
    assert storage in csp and "upgrade-insecure-requests" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    cfg = requests.get(web.url + "/__/firebase/init.json", timeout=10).json()
    assert cfg["projectId"] == web.cloud.project and cfg["apiBase"] == "/api"
    assert cfg["emulators"]["auth"] == "same-origin"
    worker = requests.get(web.url + "/assets/workers/jpeg2000.worker.min.js", timeout=10)
    assert worker.status_code == 200 and "javascript" in worker.headers["Content-Type"]
    # The JPEG-LS decoder: streaming compilation wants the WebAssembly media type.
    wasm = next((config.ROOT / "web" / "dist" / "assets").glob("charlswasm_decode-*.wasm"))
    served = requests.get(f"{web.url}/assets/{wasm.name}", timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/wasm"
    assert served.content[:4] == b"\0asm"
    assert requests.get(web.url + "/privacy-policy.txt", timeout=10).text.startswith("Privacy Policy")


def test_licence_notice_is_built_and_served(web):
    """The build writes the bundled packages' licences; dwv's is GPL-3.0, with its text."""
    built = (config.ROOT / "web" / "dist" / "third-party-licences.txt").read_bytes()
    served = requests.get(web.url + "/third-party-licences.txt", timeout=10)
    assert served.status_code == 200 and served.content == built
    built = built.decode()
    assert served.headers["Content-Type"].startswith("text/plain")
    table = dict(re.findall(r"^(\S+)\s+\d[\w.-]*\s+(.+)$", built.split("\n\n=")[0], re.M))
    assert table["dwv"] == "GPL-3.0"
    assert table["@cornerstonejs/codec-charls"] == "MIT" and table["firebase"] == "Apache-2.0"
    assert "GNU GENERAL PUBLIC LICENSE" in built and "Version 3, 29 June 2007" in built
    assert "corresponding source" in built


def test_local_server_proxies_functions_like_hosting(web, account):
    unauth = requests.get(web.url + "/api/studies", timeout=30)
    assert unauth.status_code == 401 and unauth.json()["error"] == "missing_token"
    ok = requests.get(web.url + "/api/studies", headers=account.headers(), timeout=30)
    assert ok.status_code == 200 and ok.json()["studies"] == []
    profile = requests.get(web.url + "/api/privacy/profile", headers=account.headers(), timeout=30)
    assert profile.status_code == 200 and profile.json()["profile"]["adult_attested"] is True
    shares = requests.get(web.url + "/api/links/shares", headers=account.headers(), timeout=30)
    assert shares.status_code == 200
    dicomweb = requests.get(web.url + "/dicomweb/studies", headers=account.headers(), timeout=30)
    assert dicomweb.status_code == 200 and dicomweb.json() == []
    assert dicomweb.headers["Content-Type"] == "application/dicom+json"
    assert requests.get(web.url + "/dicomweb/studies", timeout=30).status_code == 401


def test_auth_bridge_keeps_test_users_in_their_project(web):
    base = web.url + "/identitytoolkit.googleapis.com/v1/accounts"
    email = "bridge-check@example.test"
    up = requests.post(base + ":signUp", params={"key": "demo-local-key"}, timeout=30,
                       json={"email": email, "password": "correct-horse-9", "returnSecureToken": True})
    assert up.status_code == 200 and up.json()["idToken"]
    claims = hosting._jwt_payload(up.json()["idToken"])
    assert claims["aud"] == web.cloud.project
    look = requests.post(base + ":lookup", params={"key": "demo-local-key"}, timeout=30,
                         json={"idToken": up.json()["idToken"]})
    assert look.status_code == 200 and look.json()["users"][0]["email"] == email
    # The same user signs in through the fixture's own path, in the test project.
    assert web.cloud.sign_in(email, "correct-horse-9").uid == claims["user_id"]
