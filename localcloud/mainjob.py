"""``make dev``'s main job: a demo user uploads a real study through the upload endpoint,
waits for ingest, and sees the study summary and the per-file results.

The studies are two patients of pydicom's ``dicomdirtests`` set (real CT and MR series)
with their DICOMDIR, zipped here as a clinic's CD export would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from localcloud import config

DEMO_EMAIL = "demo@radiology-pacs.local"
DEMO_PASSWORD = "demo-password-1"


def build_demo_zip(out: Path) -> Path:
    import pydicom.data

    root = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"
    files = [root / "DICOMDIR"] + sorted(p for folder in ("77654033", "98892003")
                                         for p in (root / folder).rglob("*") if p.is_file())
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(root).as_posix())
    return out


def _pacs(*args: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([str(Path(sys.executable).parent / "pacs"), *args, "--json"],
                          env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 and not proc.stdout.strip():
        raise RuntimeError(f"pacs {args[0]} failed: {proc.stderr[-500:]}")
    return json.loads(proc.stdout)


def run(state: dict[str, Any]) -> bool:
    """Sign in (or sign up, confirming 18+), upload the demo study, print what happened.

    Returns True when every upload finished (complete or partial) and studies are listed.
    """
    env = {**os.environ, "PACS_SESSION_FILE": str(config.STATE_DIR / "demo-session.json")}
    zip_path = build_demo_zip(config.STATE_DIR / "demo-study.zip")
    print(f"main job: signing in {DEMO_EMAIL}")
    account = _pacs("login", "--email", DEMO_EMAIL, "--password", DEMO_PASSWORD, env=env)
    if account.get("ok"):
        # An account kept from an earlier run may predate its profile (idempotent).
        _pacs("privacy", "profile", "--create", "--adult", "yes", env=env)
    else:
        _pacs("signup", "--email", DEMO_EMAIL, "--password", DEMO_PASSWORD, "--adult", "yes",
              env=env)
    print(f"main job: uploading {zip_path.name} ({zip_path.stat().st_size // 1024} KiB)")
    result = _pacs("upload", str(zip_path), "--wait", env=env)
    for upload in result.get("uploads", []):
        print(f"  upload {upload.get('upload_id')}: {upload.get('status')} {upload.get('counts')}")
        for item in upload.get("files", []):
            if item["status"] != "stored":
                print(f"    #{item['index']:>3} {item['status']:9s} {item.get('message') or ''}")
    if not result.get("uploads"):
        print(f"main job: upload failed: {result.get('message') or result}")
        return False
    # Counts, modalities and previews are settled just after the upload finishes.
    deadline = time.monotonic() + 60
    while True:
        try:
            studies = _pacs("studies", env=env)
        except (RuntimeError, ValueError):
            return False
        listed = studies.get("studies", [])
        if (listed and all(s.get("instance_count") for s in listed)) or time.monotonic() > deadline:
            break
        time.sleep(1)
    for study in studies.get("studies", []):
        print(f"  study {study['id'][:12]}  {study.get('StudyDate') or '-':8s}  "
              f"{','.join(study.get('modalities') or []):6s}  {study.get('series_count')} series, "
              f"{study.get('instance_count')} instances  {study.get('StudyDescription') or ''}")
    finished = all(u.get("status") in ("complete", "partial") for u in result["uploads"])
    return finished and bool(studies.get("studies"))
