"""A 1,000-file CT folder through the web client's folder upload (issue 14, item 6): the
hourly rate counts files and bytes, and the client starts the folder in batches (one request
for up to 200 files), so every file is accepted and sent; rows then turn done with their
results as the server processes them.

The test waits for every file to be accepted and stored in the uploads bucket, and for the
first 20 rows to show their results (the live path); processing all 1,000 is ingest's
speed, not the client's, and takes minutes on a shared machine. ``PACS_E2E_FOLDER_ALL=1``
waits for all of them. The times (from choosing the folder) are printed and written to
``test-artifacts/folder-upload.json``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.e2e.conftest import _needs, signed_up_user
from tests.e2e.webstack import ARTIFACTS, WEB, run_node, start_web_stack, stop_web_stack
from tests.upload_folders import write_series

# With PACS_E2E_FOLDER_ALL=1 the test waits for ingest, past the default 600 s.
pytestmark = [pytest.mark.e2e, pytest.mark.localcloud, pytest.mark.timeout(2700)]

SCRIPT = WEB / "e2e" / "folder-upload.mjs"
FILES = 1000
FIRST_DONE = 20


@pytest.fixture(scope="module")
def folder_web():
    """A web stack of this module's own: the ingest of the files the test does not wait for
    stops with it, instead of running on under the session's other browser tests."""
    missing = _needs()
    if missing:
        pytest.fail(missing)
    root = Path(tempfile.mkdtemp(prefix="pacs-e2e-folder-"))
    stack = start_web_stack(root)
    yield stack
    stop_web_stack(stack)
    shutil.rmtree(root, ignore_errors=True)


def test_a_1000_file_folder_is_accepted_through_the_folder_picker(folder_web, tmp_path):
    web = folder_web
    # Arrange: a signed-up user and a CT folder of 1,000 small real DICOM files
    user = signed_up_user(web, "e2e-folder")
    folder = tmp_path / "CT-folder"
    sizes = {f"CT-folder/{p.name}": p.stat().st_size for p in write_series(folder, FILES)}
    wait_all = os.environ.get("PACS_E2E_FOLDER_ALL") == "1"
    # Act
    out = run_node(SCRIPT, "folder-upload", {
        "url": web.url, "email": user.email, "password": user.password, "folder": str(folder),
        "files": FILES, "firstDone": FIRST_DONE, "waitAll": wait_all,
        "timeoutMs": 2_000_000 if wait_all else 600_000}, timeout=2400)
    (ARTIFACTS / "folder-upload.json").write_text(json.dumps(out, indent=1))
    print(f"\n1,000-file folder: listed in {out['picked'] / 1000:.1f} s, all accepted and sent "
          f"in {out['sent'] / 1000:.1f} s, {out['processedRows']} rows done in "
          f"{out['processed'] / 1000:.1f} s; {len(out['starts'])} start requests")
    # Assert: started in five batches; every file accepted and sent, none failed
    refusals = [(line.get("status"), line.get("code"), line.get("error_type"))
                for line in web.cloud.log_lines("create-upload")
                if line.get("event") in ("request_refused", "unexpected_error")]
    assert out["starts"] == [{"status": 200, "files": 200}] * 5, refusals
    assert set(out["states"]) <= {"processing", "done"}, (out["states"], out["errors"])
    assert sum(out["states"].values()) == FILES and out["pageErrors"] == []
    assert out["results"].get("stored", 0) >= out["processedRows"]
    assert set(out["results"]) == {"stored"}
    if wait_all:
        assert out["states"] == {"done": FILES}
        assert out["serverStatuses"] == {"complete": FILES}
    # Every file has its record and its object in the uploads bucket, of its size.
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from google.cloud.firestore_v1.base_query import FieldFilter

    records = [s.to_dict() for s in web.cloud.clients().firestore.collection("uploads").where(
        filter=FieldFilter("owner", "==", user.uid)).stream()]
    assert sorted((r["filename"], r["size"]) for r in records) == sorted(sizes.items())
    assert len({r["batch"] for r in records}) == 5
    # The stack's own storage emulator (the process default is the shared layer's).
    gcs = storage.Client(project=web.cloud.project, credentials=AnonymousCredentials(),
                         client_options={"api_endpoint": web.cloud.env["STORAGE_EMULATOR_HOST"]})
    objects = {b.name: b.size for b in gcs.list_blobs(web.cloud.buckets["uploads"],
                                                       prefix=f"{user.uid}/")}
    assert objects == {r["object"]: r["size"] for r in records}
