"""The export's download link in the browser (issue 14, item 7): the export just requested
gets a link minted when it is ready (a few minutes' life, checked against the signing key);
nothing in the page holds a link later; once the sign-in is no longer recent, Download asks
for the password again (the server's 403 first), then the archive downloads."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime

import pytest

from tests.e2e.webstack import WEB, WebStack, run_node
from tests.v4_verifier import public_key_of_key_file, verify

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = WEB / "e2e" / "export-link.mjs"


def run_export_link(web: WebStack, args: dict, timeout: float = 480) -> dict:
    return run_node(SCRIPT, "export-link", {"url": web.url, **args}, timeout=timeout)


def check_archive(path, uid: str) -> None:
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["uid"] == uid


def test_export_link_is_minted_for_a_recent_sign_in_and_asked_for_again(web, account,
                                                                         tmp_path):
    settings = web.cloud.settings()
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    out = run_export_link(web, {"email": account.email, "password": account.password,
                                "recentSeconds": settings.recent_signin_seconds,
                                "firstOut": str(first), "secondOut": str(second)})
    assert out["errors"] == []
    # The link of the export just made: short-lived, one object, the user's own archive.
    ttl = min(settings.recent_signin_seconds, settings.link_ttl_seconds)
    key = public_key_of_key_file(web.cloud.env["PACS_SIGNING_KEY_FILE"])
    verified = verify(out["firstHref"], key, max_lifetime=ttl)
    assert verified.lifetime_seconds == ttl and verified.signed_at <= datetime.now(UTC)
    assert verified.object_name.startswith(f"exports/{account.uid}/")
    assert "works until" in out["panelText"]
    assert out["first"]["failure"] is None
    check_archive(first, account.uid)
    # Later: no link anywhere in the page; Download is refused by the server (stale sign-in),
    # the password is asked again, and a new link downloads the archive.
    assert out["signatureInPage"] is False
    assert "kept until" in out["rowText"]
    assert out["refusedFirst"] == [403], out["minted"]
    assert out["minted"][-1] == 200
    assert out["second"]["failure"] is None and out["second"]["url"] != out["firstHref"]
    check_archive(second, account.uid)
