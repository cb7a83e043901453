"""The study page's "Download (ZIP)" in Chromium: the page asks the DICOMweb function for a
single-use link with the session's token in a header, the browser downloads the ZIP from the
function's own URL (no token in any URL), the page stays, the archive opens with ``unzip``
and holds every stored instance, and the link does not work a second time."""

from __future__ import annotations

import subprocess
import zipfile

import pytest
import requests

from tests.e2e.conftest import ingest
from tests.e2e.webstack import WEB, WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = WEB / "e2e" / "study-zip.mjs"


def test_download_zip_from_the_study_page(web: WebStack, account, zip_file, tmp_path):
    studies = ingest(web, account, zip_file[0])
    study = next(s for s in studies if s.get("modalities") == ["CT"])
    out = tmp_path / "study.zip"
    result = run_node(SCRIPT, "study-zip", {"url": web.url, "email": account.email,
                                            "password": account.password,
                                            "studyId": study["id"], "out": str(out)})
    assert result["errors"] == [] and result["failure"] is None
    assert result["label"] == "Download (ZIP)"
    assert result["linkRequests"] == [{"status": 201, "method": "POST", "hasToken": True}]
    assert result["pageUrl"].endswith(f"/studies/{study['id']}")  # the page stays
    assert "/downloads/" in result["url"] and "token" not in result["url"].lower()
    assert result["url"].startswith(web.cloud.urls["dicomweb"].rstrip("/"))
    assert result["suggested"] == f"study-{study['id'][:12]}.zip"
    tested = subprocess.run(["unzip", "-t", str(out)], capture_output=True, text=True,
                            check=False)
    assert tested.returncode == 0, tested.stdout
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert len(names) == study["instance_count"] and all(n.endswith(".dcm") for n in names)
    assert requests.get(result["url"], timeout=30).status_code == 404  # used once
