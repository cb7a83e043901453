"""The Privacy centre's API keys in Chromium: created on a fresh sign-in, shown once (not in
the page after a reload), listed with its last use, usable as the bearer of /dicomweb from
the page, and refused as soon as its row's Revoke is clicked."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import signed_up_user
from tests.e2e.webstack import WEB, WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = WEB / "e2e" / "api-keys.mjs"


def test_a_key_is_created_shown_once_used_and_revoked_in_the_browser(web: WebStack):

    user = signed_up_user(web, "e2e-keys")
    name = f"Orthanc peer {uuid.uuid4().hex[:6]}"
    out = run_node(SCRIPT, "api-keys", {"url": web.url, "email": user.email,
                                        "password": user.password, "keyName": name},
                   timeout=300)
    assert out["errors"] == []
    assert out["key"].startswith("pacsk_")
    assert out["created"]["status"] == "active" and "Read only" in out["created"]["text"]
    assert "Never" in out["created"]["text"]
    assert out["withKey"]["status"] == 200 and out["withKey"]["body"] == "[]"
    assert out["keyInPageAfterReload"] is False
    assert "Never" not in out["afterUse"]  # the last use is listed
    assert out["revoked"]["status"] == 401 and "key_revoked" in out["revoked"]["body"]
