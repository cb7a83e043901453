"""An export that does not fit in one run (issue 16, item 8) on the local cloud: with a run
budget of zero seconds every run of the ``privacy-jobs`` job writes one location or one
object, saves where it stopped and queues the next; the last one joins the parts (Storage
compose) into one archive that standard ``unzip`` opens, every DICOM file equal to its
stored object's SHA-256, and leaves no run objects behind.
"""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from tests.localcloud_fixture import start_test_cloud, stop_test_cloud
from tests.privacy_helpers import call, create_profile, ok, seed_study, wait_request

pytestmark = pytest.mark.localcloud


@pytest.fixture(scope="module")
def slow_cloud(tmp_path_factory):
    saved = dict(os.environ)
    cloud = start_test_cloud(tmp_path_factory.mktemp("export-runs"),
                             extra_env={"PACS_EXPORT_RUN_SECONDS": "0"})
    yield cloud
    stop_test_cloud(cloud)
    os.environ.clear()
    os.environ.update(saved)


def _fetch(url: str):
    """A signed URL as issued (fake-gcs serves path-style downloads to its public host)."""
    import requests

    resp = requests.get(url, timeout=120)
    if resp.status_code == 404:
        resp = requests.get(url, timeout=120, headers={"Host": "storage.googleapis.com"})
    return resp


def test_an_export_written_over_many_runs_is_one_archive_equal_to_the_stored_objects(
        slow_cloud, tmp_path):
    # Arrange: an account with five DICOM objects (and their documents, a preview)
    cloud = slow_cloud
    user = cloud.create_user()
    create_profile(cloud, user)
    study = seed_study(cloud, user.uid, count=5)
    # Act: the export, then its download
    request = ok(call(cloud, "requests", user, body={"type": "export"}), 202)["request"]
    done = wait_request(cloud, user, request["id"], timeout=300)
    link = ok(call(cloud, f"requests/{request['id']}/download", user))
    data = _fetch(link["download_url"]).content
    # Assert: many runs, one archive
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["runs"] >= 8, result  # every location and every object in a run of its own
    assert len(data) == result["size"] and hashlib.sha256(data).hexdigest() == result["sha256"]
    archive = tmp_path / "export.zip"
    archive.write_bytes(data)
    tested = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, text=True)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout
    listing = subprocess.run(["unzip", "-Z1", str(archive)], capture_output=True, text=True)
    dicoms = [n for n in listing.stdout.splitlines() if n.startswith("dicom/")]
    assert len(dicoms) == 5
    bucket = cloud.clients().storage.bucket(cloud.buckets["instances"])
    for name in dicoms:
        _, study_key, instance = name.split("/")
        member = subprocess.run(["unzip", "-p", str(archive), name], capture_output=True).stdout
        stored = bucket.blob(f"{user.uid}/{study_key}/{instance}").download_as_bytes()
        assert study_key == study.study_key
        assert hashlib.sha256(member).hexdigest() == hashlib.sha256(stored).hexdigest()
    assert result["integrity"]["matched"] == 5 and not result["integrity"]["mismatched"]
    # Nothing of the runs is left: only the archive under the user's export prefix.
    left = [b.name for b in cloud.clients().storage.list_blobs(
        cloud.buckets["derived"], prefix=f"exports/{user.uid}/")]
    assert left == [result["object"]], left
