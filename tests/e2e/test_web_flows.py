"""The web client end to end: what a person does in the browser, against the local cloud."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from tests.e2e.conftest import ingest
from tests.e2e.webstack import run_scenario
from tests.localcloud_fixture import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]


def test_signup_upload_results_search_and_viewer(web, zip_file):
    path, expected = zip_file
    email = "e2e-upload@example.test"
    from pydicom.data import get_testdata_file

    out = run_scenario("upload", web, {"email": email, "password": "correct-horse-9",
                                       "zip": str(path), "expectedFiles": len(expected),
                                       "expectedStudies": 3,
                                       "dropFile": get_testdata_file("CT_small.dcm")})
    # A file dropped on the zone goes the same way (already stored: a duplicate).
    assert out["droppedResult"]["name"] == "dropped-CT_small.dcm"
    assert out["droppedResult"]["statuses"] == ["duplicate"]
    # Live per-file results, in plain words, under the security rules.
    by_name = {r["name"]: r for r in out["results"]}
    assert {name: by_name[name]["status"] for name in expected} == expected
    assert "not a DICOM" in by_name["CD/notes.txt"]["why"]
    assert "first copy is kept" in by_name["CD/MR_small.dcm"]["why"]
    assert out["serverStatus"] == "partial"
    assert any(" of " in s for s in out["samples"]), out["samples"]
    # The list shows every study, with previews, and fits a phone's width.
    assert out["listed"] == 3
    assert out["previews"] >= 1
    assert out["overflow"] <= 0, "horizontal scrolling on a phone"
    assert out["byModality"] and all("MR" in m for m in out["byModality"])
    assert len(out["byName"]) == 1 and "CT1" in out["byName"][0]
    assert "No studies match" in out["emptyText"]
    # A real image on the canvas, and window/level changes its pixels.
    assert out["before"]["litFraction"] > 0.05 and out["before"]["std"] > 5, out["before"]
    drag = {k: out[k] for k in ("dragTarget", "box", "wlBefore", "wlAfter")}
    assert out["afterDrag"]["hash"] != out["before"]["hash"], drag
    assert out["wlAfter"] != out["wlBefore"], drag
    assert out["afterButton"]["hash"] != out["afterDrag"]["hash"]
    assert out["rle"]["litFraction"] > 0.05 and out["rle"]["std"] > 5, out["rle"]
    assert "renewed automatically" in out["expiryText"]
    assert not [e for e in out["errors"] if "Content Security Policy" in e], out["errors"]


def test_share_link_works_without_account_and_dies_when_revoked(web, account, zip_file):
    studies = ingest(web, account, zip_file[0])
    ct = next(s for s in studies if "CT" in (s.get("modalities") or []))
    out = run_scenario("share", web, {"email": account.email, "password": account.password,
                                      "studyId": ct["id"]})
    assert "/view#" in out["shareUrl"] and "?" not in out["shareUrl"]
    assert out["guestUrl"].endswith("/view"), "the token stays out of the address bar"
    assert out["tokenInUrls"] == 0, "the token never goes into a URL the browser requests"
    assert out["image"]["litFraction"] > 0.05
    assert out["navLinks"] == 0, "the recipient has no account navigation"
    assert out["studiesStatus"] == 401
    assert "share_used" in out["access"] and "share_created" in out["access"]
    # The recipient is told what is recorded; the owner sees network and browser only.
    assert "IP address" in out["recordedNotice"] and "browser" in out["recordedNotice"]
    assert out["recipients"] and all("network 127.0.0.0/24, Chrome" in r
                                     for r in out["recipients"]), out["recipients"]
    assert not any("127.0.0.1" in r for r in out["recipients"]), out["recipients"]
    assert "1 view of 5" in out["views"]
    assert "revoked" in out["revokedText"]
    # Restriction: no shares, no viewer; then lifted. Deletion asks for the typed word.
    assert out["createDisabled"] is True
    assert "restricted" in out["restrictedViewer"].lower()
    assert out["goDisabledWrong"] is True
    assert ct["id"] not in out["remaining"] and len(out["remaining"]) == 2


def test_consent_banner_gates_analytics(web, account):
    web.clear_analytics()
    out = run_scenario("consent", web, {"email": account.email, "password": account.password})
    assert out["beforeDecision"] == 0, "nothing analytic before a decision"
    assert '"analytics":false' in out["stored"]
    assert out["bannerAfterReload"] is False, "the choice is remembered"
    assert out["afterReject"] == 0, "nothing analytic after rejecting"
    assert out["afterAccept"] >= 1
    assert out["signedIn"] >= 1
    assert set(out["events"]) <= {"page_view", "study_list_viewed", "search_used", None}
    # The choice is in the consent ledger too.
    headers = account.headers()
    fresh = web.cloud.sign_in(account.email, account.password)
    consent = requests.get(web.url + "/api/privacy/consent", headers=fresh.headers(), timeout=30).json()
    assert consent["analytics"] == "granted" and consent["active"] is True
    assert consent["ledger"][0]["granted"] is True
    del headers
    # The footer links the open-source licence notice; dwv's GPL-3.0 is named in it.
    assert re.search(r"^dwv\s+0\.36\.4\s+GPL-3\.0$", out["licences"], re.M), out["licences"][:800]


def test_export_and_account_deletion(web, account, zip_file):
    ingest(web, account, zip_file[0])
    new_email = f"moved-{uuid.uuid4().hex[:10]}@example.test"
    out = run_scenario("privacy", web, {"email": account.email, "password": account.password,
                                        "newEmail": new_email}, timeout=300)
    assert out["archive"]["status"] == 200 and out["archive"]["magic"] == "PK"
    assert out["rows"].count("rectification:completed") == 2, out["rows"]  # profile, email
    assert "export:completed" in out["rows"]
    # The sign-in email: the link went to the new address (the emulator's outbox).
    assert new_email in out["signInEmailStatus"]
    host = web.cloud.env["FIREBASE_AUTH_EMULATOR_HOST"]
    codes = requests.get(f"http://{host}/emulator/v1/projects/{web.cloud.project}/oobCodes",
                         timeout=30).json()["oobCodes"]
    assert [(c["email"], c["requestType"]) for c in codes if c.get("newEmail") == new_email] \
        == [(account.email, "VERIFY_AND_CHANGE_EMAIL")]
    assert out["signedOut"] == 0
    # The erasure job disables, then deletes, the account: signing in fails for good.
    def refused():
        resp = requests.post(
            web.url + "/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword",
            params={"key": "demo-local-key"}, timeout=30,
            json={"email": account.email, "password": account.password, "returnSecureToken": True})
        return resp.status_code == 400

    wait_for(refused, timeout=120, interval=1, what="the account to be gone")


def test_automatic_logoff_after_idle_time(web, account):
    out = run_scenario("idle", web, {"email": account.email, "password": account.password})
    assert "without activity" in out["reason"]
    assert "/signin" in out["url"]
