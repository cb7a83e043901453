"""A share recipient in OHIF (issue 15, "The OHIF viewer" and "Tests with real clients"): in a
fresh browser context that never signs in, the share link's page offers "Open in OHIF"; OHIF
reads this site's DICOMweb with the share (``Authorization: Share <token> <view>``, from the
tab's storage, never in a URL) and renders the shared MR; another study of the same owner,
asked for by its UID with the share or opened in OHIF, gives nothing (empty QIDO results,
404); after the owner revokes the share, OHIF reloaded gets nothing either. The share allows
one view: the share page's view serves OHIF too. A de-identified share renders its copy in
OHIF without the patient's name, ID or original UIDs anywhere the recipient could read."""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.conftest import ingest, signed_up_user
from tests.e2e.ohif_data import MR_NAME, MR_PATIENT_ID, mr_series
from tests.e2e.viewer_data import series_zip, slice_series
from tests.e2e.webstack import WEB, WebStack, run_node
from tests.localcloud_fixture import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = WEB / "e2e" / "ohif-share.mjs"
STUDY_UID = "0020000D"
# How the MR's patient's name shows in a page or an answer (DICOM, the web client's and
# OHIF's forms), and the name and ID together.
NAME_FORMS = (MR_NAME, "Mr Ohif", "Mr, Ohif", "Ohif, Mr", "Ohif Mr")
IDENTITY = (*NAME_FORMS, MR_PATIENT_ID)


@pytest.fixture(scope="module")
def owner(web: WebStack, tmp_path_factory):
    """A user with two studies, an MR (to be shared) and a CT: the user and both studies'
    details (their API documents with series)."""
    user = signed_up_user(web, "e2e-ohif-share")
    mr, ct = mr_series(), slice_series(name="Other^Ohif")
    path, count = series_zip(tmp_path_factory.mktemp("ohif-share") / "two.zip", mr + ct)
    studies = ingest(web, user, path, count)
    assert len(studies) == 2
    by_name = {}
    for study in studies:
        got = requests.get(f"{web.url}/api/studies/{study['id']}", headers=user.headers(),
                           timeout=30).json()
        by_name[study["PatientName"]] = {**got, "id": study["id"]}
    return user, by_name[MR_NAME], by_name["Other^Ohif"]


def _json(body: str | None) -> list:
    return json.loads(body) if body else []


def test_a_share_recipient_opens_the_shared_study_in_ohif_and_nothing_else(web: WebStack, owner):
    user, shared, other = owner
    shared_uid = shared["study"]["StudyInstanceUID"]
    other_uid = other["study"]["StudyInstanceUID"]
    created = requests.post(web.url + "/api/links/shares", headers=user.headers(), timeout=30,
                            json={"study_id": shared["id"], "max_views": 1})
    assert created.status_code in (200, 201), created.text
    share = created.json()
    token = share["token"]
    assert share["url"] == f"{web.url}/view#{token}"
    out = run_node(SCRIPT, "ohif-share", {
        "url": web.url, "shareUrl": share["url"], "otherUid": other_uid,
        "otherSeriesUid": other["series"][0]["SeriesInstanceUID"],
        "revoke": f"{web.url}/api/links/shares/{share['share_id']}", "dropView": True,
        "ownerHeaders": user.headers()}, timeout=420)
    assert out.get("failure") is None, {k: v for k, v in out.items() if k != "urls"}
    assert out["sharePage"]["href"] == f"/ohif/viewer?StudyInstanceUIDs={shared_uid}&share=1"
    assert out["csp"] == [], out["csp"]
    # OHIF read the shared study with the share only (no bearer), and rendered it.
    requests_made = out["shared"]
    assert requests_made and all(r["share"] and not r["bearer"] for r in requests_made)
    assert all(r["status"] < 400 for r in requests_made), requests_made
    assert any(r["path"].endswith("/metadata") for r in requests_made)
    assert any("/frames/" in r["path"] for r in requests_made)
    first = out["first"]
    assert first and first["lit"] > first["pixels"] * 0.01 and first["distinct"] > 16, first
    # Not de-identified: the patient shows on both pages (the de-identified test's check of
    # these forms is not vacuous).
    for text in (out["sharePage"]["text"], out["viewerText"]):
        assert [f for f in NAME_FORMS if f in text], text[:2000]
    assert MR_PATIENT_ID in out["viewerText"], out["viewerText"][:2000]
    # Another study of the owner, by its UID, with the share: nothing.
    asked = {r["path"].replace(other_uid, "OTHER"): r for r in out["otherAsked"]}
    assert asked["/dicomweb/studies?StudyInstanceUID=OTHER"]["status"] == 200
    assert _json(asked["/dicomweb/studies?StudyInstanceUID=OTHER"]["body"]) == []
    for path in ("/dicomweb/studies/OTHER/series", "/dicomweb/studies/OTHER/metadata",
                 f"/dicomweb/studies/OTHER/series/{other['series'][0]['SeriesInstanceUID']}/metadata"):
        assert asked[path]["status"] == 404 or (asked[path]["status"] == 200 and
                                                _json(asked[path]["body"]) == []), asked[path]
    for path in ("/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances"):
        found = _json(asked[path]["body"])
        assert asked[path]["status"] == 200 and found, asked[path]
        assert {r[STUDY_UID]["Value"][0] for r in found if STUDY_UID in r} <= {shared_uid}
        assert other_uid not in asked[path]["body"]
    # … and opened in OHIF: empty or 404 answers, no image.
    other_ohif = out["otherInOhif"]
    assert other_ohif["requests"], other_ohif
    for r in other_ohif["requests"]:
        assert r["share"] and (r["status"] == 404 or (r["status"] == 200
                                                      and _json(r.get("body")) == [])), r
    assert not other_ohif["image"] or other_ohif["image"]["lit"] == 0, other_ohif["image"]
    # No view in the tab: OHIF asked for a new one, the used-up share gave none, and OHIF went
    # back to the share page (which says so) without asking DICOMweb anything.
    no_view = out["noView"]
    assert no_view["url"] == f"{web.url}/view" and no_view["dicomweb"] == 0, no_view
    assert "used up" in no_view["text"], no_view["text"][:2000]
    exchanges = [u for u in out["urls"] if u.endswith("/api/links/share/manifest")]
    assert len(exchanges) == 3  # the share page, OHIF's attempt, the share page again
    # Revoked: OHIF reloaded on the shared study gets no answer but refusals, and no image.
    assert out["revoked"] in (200, 204)
    revoked = out["afterRevoke"]
    assert all(r["status"] >= 400 for r in revoked["requests"]), revoked["requests"]
    assert not revoked["image"] or revoked["image"]["lit"] == 0, revoked
    # The token was in no request URL of the recipient's browser.
    assert out["urls"] and not [u for u in out["urls"] if token in u or "token=" in u]
    # One view was counted: the share page's, which OHIF used (and reused after a reload);
    # the refused exchanges counted none.
    listed = requests.get(web.url + "/api/links/shares", headers=user.headers(), timeout=30)
    mine = [s for s in listed.json()["shares"] if s["share_id"] == share["share_id"]]
    assert mine and mine[0]["views"] == 1 and mine[0]["status"] == "revoked", mine


def test_a_deidentified_share_opens_in_ohif_without_the_patients_identity(web: WebStack, owner):
    """A de-identified share in OHIF: the copy renders under its own UIDs, and neither the
    pages' texts nor any DICOMweb JSON answer the recipient's browser received holds the
    original PatientName, PatientID or Study/Series Instance UIDs."""
    user, shared, _ = owner
    original = shared["study"]
    created = requests.post(web.url + "/api/links/shares", headers=user.headers(), timeout=120,
                            json={"study_id": shared["id"], "deidentified": True})
    assert created.status_code in (200, 201), created.text
    share = created.json()

    def copy_status() -> str | None:
        listed = requests.get(web.url + "/api/links/shares", headers=user.headers(), timeout=30)
        return next(s["copy_status"] for s in listed.json()["shares"]
                    if s["share_id"] == share["share_id"])

    wait_for(lambda: copy_status() == "ready", timeout=180, what="the de-identified copy")
    out = run_node(SCRIPT, "ohif-share-deid", {"url": web.url, "shareUrl": share["url"]},
                   timeout=420)
    assert out.get("failure") is None, out
    href = out["sharePage"]["href"]
    copy_uid = href.split("StudyInstanceUIDs=")[1].split("&")[0]
    assert href.endswith("&share=1") and copy_uid != original["StudyInstanceUID"]
    first = out["first"]
    assert first and first["lit"] > first["pixels"] * 0.01 and first["distinct"] > 16, first
    answers = out["shared"]
    assert answers and all(r["share"] and r["status"] < 400 for r in answers), answers
    assert any(r["path"].endswith("/metadata") for r in answers)
    assert any("/frames/" in r["path"] for r in answers)
    bodies = [r["body"] for r in answers if r.get("body")]
    assert any(copy_uid in b for b in bodies), "the JSON answers are the copy's"
    # The original identity is nowhere the recipient could read it.
    forbidden = [*IDENTITY, original["StudyInstanceUID"],
                 shared["series"][0]["SeriesInstanceUID"]]
    for text in [out["sharePage"]["text"], out["viewerText"], *bodies]:
        assert not [f for f in forbidden if f in text], [f for f in forbidden if f in text]
