"""Privacy-policy promises kept by the web client in the browser (issue 16).

Consent: "You can revoke analytics/tracking consent at any time ... by clearing the
tracking-consent value in your browser's localStorage." Signed in, a cleared value means
"not given on this browser": the banner is shown, the value is not refilled from the
consent ledger, and nothing analytic leaves the page. The choice is recorded under the same
policy version as the server's (the policy's effective date, issue 16 item 2).
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.webstack import WEB, WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

CONSENT_WITHDRAW = WEB / "e2e" / "consent-withdraw.mjs"


def test_clearing_the_local_consent_value_withdraws_it_when_signed_in(web: WebStack, account):
    web.clear_analytics()
    out = run_node(CONSENT_WITHDRAW, "consent-withdraw",
                   {"url": web.url, "email": account.email, "password": account.password})
    # The grant was real: stored locally and mirrored to the ledger.
    assert '"analytics":true' in out["granted"]
    assert out["consentPosts"] and all(s < 300 for s in out["consentPosts"]), out
    ledger = requests.get(web.url + "/api/privacy/consent", headers=account.headers(),
                          timeout=30).json()
    assert ledger["analytics"] == "granted", ledger
    # One policy version: the browser recorded its choice under the version the server holds
    # (both the policy file's effective date), so the ledger does not ask for renewal.
    assert json.loads(out["granted"])["policyVersion"] == ledger["current_policy_version"]
    assert ledger["needs_renewal"] is False
    # Cleared and reloaded: asked again, nothing refilled, nothing sent.
    assert out["bannerAfterReload"] is True, out
    assert out["storedAfterReload"] is None, out
    assert out["bannerAfterNavigation"] is True, out
    assert out["storedAfterNavigation"] is None, out
    assert out["afterClear"] == [], out
