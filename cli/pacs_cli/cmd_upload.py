"""``pacs upload PATH... [--wait] [--json]``: resumable uploads with progress, then the
per-file results."""

from __future__ import annotations

import sys
import time
from typing import Any

from pacs_cli import endpoints, firestore_rest, session, upload_batch, upload_start, uploader
from pacs_cli.errors import CliError
from pacs_cli.upload_sessions import default_session_store

FINAL = ("complete", "partial", "failed")


def register(sub) -> None:
    p = sub.add_parser("upload", help="upload DICOM files, folders or ZIP archives")
    p.add_argument("paths", nargs="+")
    p.add_argument("--wait", action="store_true", help="wait for processing; print results")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait with --wait")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=upload)


def wait_for_upload(upload_id: str, timeout: float) -> dict[str, Any]:
    """Poll the upload record (as the user, under the rules) until it is final."""
    deadline = time.monotonic() + timeout
    while True:
        record = firestore_rest.get(f"uploads/{upload_id}") or {}
        if record.get("status") in FINAL:
            files = list(firestore_rest.list_docs(f"uploads/{upload_id}/files"))
            return {"upload_id": upload_id, "status": record["status"],
                    "counts": record.get("counts", {}),
                    "files": [{k: f.get(k) for k in ("index", "name", "status", "reason",
                                                     "message", "study_key")} for f in files]}
        if time.monotonic() > deadline:
            return {"upload_id": upload_id, "status": record.get("status", "unknown"),
                    "timed_out": True}
        time.sleep(0.5)


def upload(args) -> tuple[dict[str, Any], str]:
    try:
        url = endpoints.function_url("create-upload")
        start = upload_start.make_start_upload(url, session.id_token)
        start_batch = upload_start.make_start_batch(url, session.id_token)
        session.id_token()  # fail early when not signed in
    except session.AuthFailed as err:
        raise CliError(str(err), code="not_signed_in") from err
    try:
        files = uploader.iter_upload_files(args.paths)
    except FileNotFoundError as err:
        raise CliError(f"no such file or folder: {err.filename or err}", code="not_found") from err
    except uploader.UploadError as err:
        raise CliError(str(err), code=err.code) from err
    if not files:
        raise CliError("no files to upload at those paths", code="no_files")
    sent = upload_batch.upload_all(args.paths, start, show_progress=not args.no_progress,
                               stream=sys.stderr,
                               session_store=default_session_store(),
                               start_batch=start_batch)
    results = []
    for item in sent:
        entry = {"path": item["path"], "size": item["size"]}
        if "error" in item:
            entry.update(status="not_uploaded", error=item["error"], message=item["message"])
        else:
            entry["upload_id"] = item["upload_id"]
            if args.wait:
                entry.update(wait_for_upload(item["upload_id"], args.timeout))
        results.append(entry)
    ok = all(r.get("status") not in ("not_uploaded", "failed") and not r.get("timed_out")
             for r in results)
    lines = []
    for r in results:
        lines.append(f"{r['path']}: {r.get('status', 'uploaded')} {r.get('counts', '')}")
        for f in r.get("files", []):
            if f["status"] != "stored":
                lines.append(f"    #{f['index']} {f['status']}: {f.get('message') or ''}")
    return {"ok": ok, "uploads": results}, "\n".join(lines)
