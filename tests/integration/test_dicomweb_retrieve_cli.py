"""``pacs download STUDY``: the study ZIP through the CLI, by study id and by UID, written
whole (``unzip -t``) with the stored bytes of every instance, never over an existing file;
another user's study is refused like an unknown one."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pacs import ids
from pydicom.data import get_testdata_file

from tests.dicomweb_helpers import ingest, read_original
from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud


def test_pacs_download_writes_the_study_zip(cloud: LocalCloud, tmp_path: Path):
    alice, bob = cloud.create_user(), cloud.create_user()
    originals = [read_original(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")]
    ingest(cloud, alice, originals)
    ct = originals[0].ds
    env = cloud.cli_env(tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()

    def pacs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pacs_cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=180, cwd=work)

    def pacs_json(*args: str) -> dict[str, Any]:
        proc = pacs(*args, "--json")
        return json.loads(proc.stdout)

    assert pacs_json("login", "--email", alice.email, "--password", alice.password)["ok"]
    key = ids.study_key(cloud.settings().hash_key, alice.uid, ct.StudyInstanceUID)
    got = pacs_json("download", key)
    assert got["ok"] and got["instances"] == 1, got
    path = work / got["path"]
    assert path.name == f"study-{key[:12]}.zip" and got["bytes"] == path.stat().st_size
    tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True,
                            check=False)
    assert tested.returncode == 0, tested.stdout
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [f"{ct.SeriesInstanceUID}/{ct.SOPInstanceUID}.dcm"]
        assert zf.read(zf.namelist()[0]) == b"\0" * 128 + originals[0].data[128:]
    assert not list(work.glob(".*.part"))
    # Never over an existing file; by UID with -o.
    again = pacs_json("download", key)
    assert again["ok"] is False and again["error"] == "exists"
    mr = originals[1].ds
    by_uid = pacs_json("download", mr.StudyInstanceUID, "-o", "mr.zip")
    assert by_uid["ok"] and by_uid["instances"] == 1
    assert "pacs" not in pacs("download", mr.StudyInstanceUID, "-o", "mr2.zip").stderr
    # Someone else's study and malformed ids: refused, nothing written.
    assert pacs_json("login", "--email", bob.email, "--password", bob.password)["ok"]
    refused = pacs_json("download", ct.StudyInstanceUID, "-o", "bob.zip")
    assert refused["ok"] is False and refused["error"] == "not_found"
    assert pacs_json("download", "../etc")["error"] == "bad_arguments"
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [path.name, "mr.zip", "mr2.zip"])
