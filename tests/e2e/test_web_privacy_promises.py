"""Privacy-policy promises kept by the web client in the browser (issue 16).

Consent: "You can revoke analytics/tracking consent at any time ... by clearing the
tracking-consent value in your browser's localStorage." Signed in, a cleared value means
"not given on this browser": the banner is shown, the value is not refilled from the
consent ledger, and nothing analytic leaves the page. The choice is recorded under the same
policy version as the server's (the policy's effective date, issue 16 item 2).

Search (item 3): patient names and IDs go in the body of POST /api/studies/search, never
into a request URL or the page's address (request logs, browser history).

Processors (item 5): the page lists every service the deploy plan enables that holds
personal data (infra/processors.json, the plan's list), with what it holds and where.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.conftest import ingest
from tests.e2e.webstack import WEB, WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

CONSENT_WITHDRAW = WEB / "e2e" / "consent-withdraw.mjs"
SEARCH_PRIVACY = WEB / "e2e" / "search-privacy.mjs"
PROCESSORS_PAGE = WEB / "e2e" / "processors.mjs"


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


def test_search_filters_stay_out_of_urls(web: WebStack, account, zip_file):
    studies = ingest(web, account, zip_file[0])
    ct = next(s for s in studies if "CT" in (s.get("modalities") or []))
    patient_id = ct["PatientID"]
    out = run_node(SEARCH_PRIVACY, "search-privacy",
                   {"url": web.url, "email": account.email, "password": account.password,
                    "name": "ct1", "patientId": patient_id})
    assert len(out["all"]) == 3 and out["found"] == [ct["id"]], out
    # The filters went in POST bodies, the address stayed /studies.
    assert out["urlAfterSearch"] == web.url + "/studies", out
    assert out["searches"] and {r["method"] for r in out["searches"]} == {"POST"}, out
    assert any(json.loads(r["body"]).get("patient_id") == patient_id for r in out["searches"])
    assert all("?" not in r["url"] for r in out["searches"]), out["searches"]
    assert out["sentWithFilters"] == [], out["sentWithFilters"]
    assert [a for a in out["addresses"] if "?" in a] == [], out["addresses"]
    # Back restores the search from memory; an old bookmark's filters are dropped.
    assert out["afterBack"] == {"rows": [ct["id"]], "name": "ct1"}, out
    assert out["bookmark"]["url"] == web.url + "/studies", out
    assert len(out["bookmark"]["rows"]) == 3 and out["bookmark"]["name"] == "", out


def test_processors_page_lists_every_enabled_service_with_personal_data(web: WebStack):
    from deploy import plan, privacy

    out = run_node(PROCESSORS_PAGE, "processors-page", {"url": web.url})
    shown = {row[0]: row for row in out["rows"]}
    holding = {s.name: s for s in privacy.services() if s.personal_data}
    assert set(shown) == set(holding), (set(shown) ^ set(holding))
    assert {"Cloud Logging", "Secret Manager"} <= set(shown)
    for name, service in holding.items():
        assert service.api in plan.APIS
        # Processor, entity, purpose, data, location: as listed.
        assert shown[name][1:5] == [service.fields[f] for f in
                                    ("entity", "purpose", "data", "location")], name
