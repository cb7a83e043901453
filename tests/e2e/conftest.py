"""Browser tests: the built web client, served by the local hosting server, against a test
stack of the local cloud, in headless Debian Chromium driven by playwright-core."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.e2e.webstack import WEB, WebStack, start_web_stack, stop_web_stack

CHROMIUM = Path("/usr/bin/chromium")


def _needs() -> str | None:
    if not CHROMIUM.exists():
        return "Debian chromium is not installed (make install installs it)"
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        return "web/node_modules is missing (make install)"
    if not (WEB / "dist" / "index.html").is_file():
        return "web/dist is missing (make web)"
    return None


@pytest.fixture(scope="session")
def web() -> WebStack:
    missing = _needs()
    if missing:
        pytest.fail(missing)
    root = Path(tempfile.mkdtemp(prefix="pacs-e2e-"))
    stack = start_web_stack(root)
    yield stack
    stop_web_stack(stack)
    shutil.rmtree(root, ignore_errors=True)


def study_zip(path: Path) -> tuple[Path, dict[str, str]]:
    """A real archive from pydicom's test files: an uncompressed CT, an RLE MR and a JPEG 2000
    NM (three studies), an MR with the RLE one's SOP Instance UID but other bytes (conflict),
    the CT again (duplicate) and a text file (rejected)."""
    from pydicom.data import get_testdata_file

    expected = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, status in (("MR_small_RLE.dcm", "stored"), ("MR_small.dcm", "conflict"),
                             ("JPEG2000.dcm", "stored"), ("CT_small.dcm", "stored")):
            archive.write(get_testdata_file(name), f"CD/{name}")
            expected[f"CD/{name}"] = status
        archive.write(get_testdata_file("CT_small.dcm"), "CD/copy/CT_small.dcm")
        expected["CD/copy/CT_small.dcm"] = "duplicate"
        archive.writestr("CD/notes.txt", "not a DICOM file")
        expected["CD/notes.txt"] = "rejected"
    return path, expected


@pytest.fixture(scope="session")
def zip_file(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    return study_zip(tmp_path_factory.mktemp("e2e") / "cd-export.zip")


def signed_up_user(web: WebStack, label: str = "e2e"):
    """A new user with the 18+ profile (made through the privacy API, as sign-up does), its
    e-mail ``{label}-{random}@example.test``."""
    import requests

    user = web.cloud.create_user(f"{label}-{uuid.uuid4().hex[:10]}@example.test")
    resp = requests.post(web.url + "/api/privacy/profile", json={"adult": True},
                         headers=user.headers(), timeout=30)
    assert resp.status_code in (200, 201), resp.text
    return user


@pytest.fixture
def account(web: WebStack):
    """A signed-up user (18+ profile made through the privacy API)."""
    return signed_up_user(web, "e2e")


def ingest(web: WebStack, user, zip_path: Path, instances: int = 3) -> list[dict]:
    from tests.ingest_helpers import upload_bytes, wait_final, wait_settled

    upload_id = upload_bytes(web.cloud, user, zip_path.read_bytes(), "cd-export.zip",
                             "application/zip")
    wait_final(web.cloud, upload_id)
    wait_settled(web.cloud, user.uid, instances)
    import requests

    studies = requests.get(web.url + "/api/studies", headers=user.headers(), timeout=30).json()
    return studies["studies"]


@pytest.fixture(scope="session")
def viewer_account(web: WebStack, tmp_path_factory):
    """One user with the viewer's studies (JPEG-LS, deflated, a series of slices), shared by
    the viewer and accessibility tests: the user and the studies by patient name."""

    from tests.e2e.viewer_data import viewer_zip

    user = signed_up_user(web, "e2e-viewer")
    path, instances = viewer_zip(tmp_path_factory.mktemp("viewer") / "viewer.zip")
    studies = ingest(web, user, path, instances)
    return user, {s["PatientName"]: s for s in studies}


def vitest() -> subprocess.CompletedProcess:
    return subprocess.run(["npx", "--no-install", "vitest", "run"], cwd=WEB, capture_output=True,
                          text=True, timeout=300)
