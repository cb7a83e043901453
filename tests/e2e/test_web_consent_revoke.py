"""The policy's "You can revoke analytics/tracking consent at any time using the cookie
preferences in the site footer" (docs/privacy.md, row ``consent-revoke``): signed in with
analytics accepted, rejecting through the footer's "Cookie preferences" stops every analytic
request at once (navigation and a reload included), keeps the choice in the browser and
records the withdrawal in the server's consent ledger, once. While accepted, no event is sent
before the choice has reached the ledger (the server would refuse it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.e2e.webstack import WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = Path(__file__).with_name("consent_revoke.mjs")


def test_rejecting_in_the_footers_cookie_preferences_stops_analytics(web: WebStack, account):
    out = run_node(SCRIPT, "consent-revoke", {"url": web.url, "email": account.email,
                                              "password": account.password})
    assert out["whileAccepted"] >= 1, out
    assert out["afterRevocation"] == out["atRevocation"], out
    assert '"analytics":false' in out["stored"] and out["bannerAfterReload"] is False, out
    # The browser mirrored the withdrawal to the ledger: the server refuses events too.
    fresh = web.cloud.sign_in(account.email, account.password)
    consent = requests.get(web.url + "/api/privacy/consent", headers=fresh.headers(),
                           timeout=30).json()
    assert consent["analytics"] == "withdrawn", consent
    # Newest first: one withdrawal after one grant (the footer's banner once mirrored the
    # choice twice: two withdrawals).
    assert [e["action"] for e in consent["ledger"]] == ["withdrawn", "granted"], consent["ledger"]
    refused = requests.post(web.url + "/api/privacy/analytics", json={"event": "page_view"},
                            headers=fresh.headers(), timeout=30)
    assert refused.status_code == 403, refused.text
    # No event was refused: signed-in events wait until the choice reached the ledger
    # (they were sent before it and refused, 403 consent_required, three per sign-in).
    assert out["refused"] == [] and out["errors"] == [], (out["refused"], out["errors"])
