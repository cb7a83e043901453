"""``pacs download STUDY [-o FILE]``: one of your studies as a ZIP of its DICOM files.

``STUDY`` is the study id that ``pacs studies`` lists, or its StudyInstanceUID. The ZIP comes
from the DICOMweb study retrieve (``Accept: application/zip``), streamed to disk as it
arrives (never held in memory), written to a temporary name and renamed once whole and
readable, so an interrupted download never leaves a file that looks complete. It goes to
the ``dicomweb`` function's own URL (``PACS_DICOMWEB_URL`` in production): a transfer
through the Hosting rewrite is cut at 60 s (docs/dicomweb.md).
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

import requests

from pacs_cli import api, endpoints, session
from pacs_cli.errors import CliError

STUDY_KEY = re.compile(r"^[0-9a-f]{32}$")
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
CHUNK = 1024 * 1024
# (connect, read between chunks) seconds: a long study is fine, a stalled one is not.
TIMEOUT = (30, 300)


def register(sub) -> None:
    p = sub.add_parser("download", help="download one of your studies as a ZIP",
                       description="pacs download STUDY [-o FILE]  (STUDY: the id that "
                                   "'pacs studies' lists, or the StudyInstanceUID)")
    p.add_argument("study", help="study id or StudyInstanceUID")
    p.add_argument("-o", "--output", help="where to write the ZIP "
                                          "(default: study-<id>.zip here; never overwritten)")
    p.set_defaults(run=download)


def _study_uid(study: str) -> str:
    if STUDY_KEY.fullmatch(study):
        uid = (api.call("studies", "GET", study).get("study") or {}).get("StudyInstanceUID")
        if not uid:
            raise CliError("the study has no StudyInstanceUID", code="not_found")
        return str(uid)
    if UID.fullmatch(study) and len(study) <= 64:
        return study
    raise CliError("give the study id from 'pacs studies' or a StudyInstanceUID",
                   code="bad_arguments")


def _refusal(resp: requests.Response) -> CliError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    return CliError(body.get("message") or f"HTTP {resp.status_code}",
                    code=body.get("error", f"http_{resp.status_code}"))


def download(args) -> tuple[dict[str, Any], str]:
    study_uid = _study_uid(args.study)
    try:
        token = session.id_token()
    except session.AuthFailed as err:
        raise CliError(str(err), code="not_signed_in") from err
    url = f"{endpoints.dicomweb_url().rstrip('/')}/studies/{study_uid}"
    with requests.get(url, stream=True, timeout=TIMEOUT, headers={
            "Authorization": f"Bearer {token}", "Accept": "application/zip"}) as resp:
        if not resp.ok:
            raise _refusal(resp)
        if resp.headers.get("Content-Type", "").split(";")[0].strip() != "application/zip":
            raise CliError("the server did not send a ZIP", code="bad_response")
        default = re.search(r'filename="([\w.-]+)"', resp.headers.get("Content-Disposition", ""))
        target = Path(args.output or (default.group(1) if default else "study.zip"))
        partial = target.with_name(f".{target.name}.part")
        written = _save(resp, target, partial)
    try:
        with zipfile.ZipFile(partial) as zf:
            members = len(zf.infolist())
        os.link(partial, target)  # fails if the target appeared meanwhile: never overwrite
    except (zipfile.BadZipFile, FileExistsError) as err:
        partial.unlink(missing_ok=True)
        raise CliError(f"{target}: {err}", code="download_failed") from err
    partial.unlink()
    return ({"ok": True, "path": str(target), "bytes": written, "instances": members},
            f"{target}: {members} instances, {written:,} bytes")


def _save(resp: requests.Response, target: Path, partial: Path) -> int:
    if target.exists():
        raise CliError(f"{target} exists; choose another name with -o", code="exists")
    written = 0
    try:
        with open(partial, "xb") as out:
            for chunk in resp.iter_content(CHUNK):
                out.write(chunk)
                written += len(chunk)
    except FileExistsError as err:
        raise CliError(f"{partial} exists (another download?)", code="exists") from err
    except (requests.RequestException, OSError) as err:
        partial.unlink(missing_ok=True)
        raise CliError(f"the download stopped after {written:,} bytes: {type(err).__name__}",
                       code="download_failed") from err
    return written
