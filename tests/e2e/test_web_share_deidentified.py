"""A de-identified share made in the web client's share dialog (issue 16), in Chromium: the
"De-identified copy" box is on by default; before the share is made the owner sees what the
copy leaves out (here a secondary capture) and confirms; the share list marks the share; a
recipient in a fresh browser context opens the link, the copy's image renders, and the
original patient name, ID and UIDs appear nowhere in the page or in any JSON it received; the
page says it is a de-identified copy and what was left out."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file

from tests.e2e.conftest import ingest, signed_up_user
from tests.e2e.webstack import WEB, WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = WEB / "e2e" / "share-deidentified.mjs"
NAME, PATIENT_ID = "Deid^Webtest", "DEID-WEB-4711"


def _study(path) -> tuple[list[pydicom.Dataset], object]:
    """A CT and a secondary capture in one study, named NAME."""
    out = []
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for name in ("CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.StudyInstanceUID, ds.PatientName, ds.PatientID = ct.StudyInstanceUID, NAME, PATIENT_ID
        out.append(ds)
    with zipfile.ZipFile(path, "w") as archive:
        for i, ds in enumerate(out):
            data = io.BytesIO()
            ds.save_as(data, enforce_file_format=True)
            archive.writestr(f"f{i}.dcm", data.getvalue())
    return out, path


def test_a_deidentified_share_from_the_dialog_renders_for_the_recipient(web: WebStack,
                                                                         tmp_path):
    user = signed_up_user(web, "e2e-deid")
    originals, path = _study(tmp_path / "deid.zip")
    (study,) = ingest(web, user, path, 2)
    out = run_node(SCRIPT, "share-deidentified", {
        "url": web.url, "email": user.email, "password": user.password,
        "studyId": study["id"]}, timeout=420)
    assert out["checkedByDefault"] is True
    assert "will hold 1 of 2 images" in out["previewText"], out["previewText"]
    assert out["leftOut"] == ["1 secondary capture (screenshot or scan)"]
    assert out["sharesBefore"] == 0
    assert "de-identified copy" in out["createdText"] and "/view#" in out["shareUrl"]
    assert out["badge"] == "De-identified"
    assert out["image"] and out["image"]["litFraction"] > 0.05, out["image"]
    assert out["thumbnails"] and all(t["width"] > 0 for t in out["thumbnails"]), out["thumbnails"]
    assert out["patientLine"] == "De-identified patient"
    # The recipient is told it is a de-identified copy, and what it left out.
    assert "de-identified copy" in out["notice"] and "1 secondary capture" in out["notice"]
    secrets = {NAME, NAME.replace("^", " "), "Webtest", PATIENT_ID,
               *{ds.StudyInstanceUID for ds in originals},
               *{ds.SeriesInstanceUID for ds in originals},
               *{ds.SOPInstanceUID for ds in originals}}
    seen = [out["pageText"], out["pageHtml"], *out["guestResponses"]]
    assert len(out["guestResponses"]) >= 2  # the manifest and the series page
    for secret in secrets:
        assert not [s for s in seen if secret in s], secret
    assert [e for e in out["errors"] if e.startswith("pageerror")] == []
    # The share as the owner's API lists it.
    listed = requests.get(web.url + "/api/links/shares", headers=user.headers(), timeout=30)
    (share,) = listed.json()["shares"]
    assert share["deidentified"] is True and share["left_out"] == {"secondary_capture": 1}
