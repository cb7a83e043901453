"""Structured log events: one named function per event.

Each line is a Cloud Logging JSON line on stdout with a ``severity``. Only ids go in:
uid, upload id, keyed hashes of DICOM UIDs, counts, reason codes. Never names, patient ids,
file names or exception text from parsing untrusted files (it can quote the file).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_out: TextIO = sys.stdout


def write_to(stream: TextIO) -> None:
    """Send the log lines elsewhere (a command line tool keeps stdout for its answer)."""
    global _out
    _out = stream


def emit(severity: str, event: str, message: str, **ids: Any) -> None:
    """Write one JSON log line. ``ids`` must hold identifiers and counts only."""
    record = {
        "severity": severity,
        "message": message,
        "event": event,
        "time": datetime.now(UTC).isoformat(),
        **{k: v for k, v in ids.items() if v is not None},
    }
    _out.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
    _out.flush()


def function_started(function: str, project: str) -> None:
    emit("INFO", "function_started", f"{function} ready", function=function, project=project)


def event_ignored(function: str, bucket: str, reason: str) -> None:
    emit("DEBUG", "event_ignored", "event not for this function", function=function,
         bucket=bucket, reason=reason)


def not_implemented(function: str) -> None:
    emit("NOTICE", "not_implemented", f"{function} is not implemented yet", function=function)


def request_refused(function: str, status: int, code: str, uid: str | None = None) -> None:
    emit("WARNING", "request_refused", "request refused", function=function, status=status,
         code=code, uid=uid)


def unexpected_error(function: str, error_type: str, **ids: Any) -> None:
    emit("ERROR", "unexpected_error", "unexpected error", function=function,
         error_type=error_type, **ids)


def scheduled_job_received(job: str, message_id: str) -> None:
    emit("INFO", "scheduled_job_received", "scheduled job message received", job=job,
         message_id=message_id)


def event_received(function: str, attributes: dict[str, Any]) -> None:
    """The CloudEvent attributes of a delivery (object names here carry ids only)."""
    emit("INFO", "event_received", "event received", function=function,
         ce_id=attributes.get("id"), ce_type=attributes.get("type"),
         ce_source=attributes.get("source"), ce_subject=attributes.get("subject"),
         ce_time=attributes.get("time"))


def upload_refused(uid: str | None, upload_id: str | None, code: str) -> None:
    emit("WARNING", "upload_refused", "upload refused", uid=uid, upload_id=upload_id, code=code)


def upload_checkpoint(uid: str, upload_id: str, cursor: int) -> None:
    emit("INFO", "upload_checkpoint", "upload continues in a new batch", uid=uid,
         upload_id=upload_id, cursor=cursor)


def upload_finished(uid: str, upload_id: str, status: str, counts: dict[str, int]) -> None:
    emit("INFO", "upload_finished", "upload processed", uid=uid, upload_id=upload_id,
         status=status, counts=counts)


def instance_stored(uid: str, upload_id: str, member: int, status: str, instance_hash: str) -> None:
    emit("DEBUG", "instance_stored", "instance written", uid=uid, upload_id=upload_id,
         member=member, status=status, instance=instance_hash)


def instance_indexed(uid: str, instance_hash: str, outcome: str) -> None:
    emit("DEBUG", "instance_indexed", "instance indexed", uid=uid, instance=instance_hash,
         outcome=outcome)


def series_settled(uid: str, series_hash: str, instances: int, preview: str) -> None:
    emit("INFO", "series_settled", "series counts and preview updated", uid=uid,
         series=series_hash, instances=instances, preview=preview)


def event_expired(function: str, event_id: str) -> None:
    emit("ERROR", "event_expired", "event older than the maximum age dropped", function=function,
         ce_id=event_id)


def event_retry(function: str, code: str, **ids: Any) -> None:
    emit("INFO", "event_retry", "event not done yet; asking for redelivery", function=function,
         code=code, **ids)


def privacy_request_overdue(request_id: str, kind: str, days_overdue: int) -> None:
    """One per overdue request per run: the deploy plan's log-based alert counts these."""
    emit("ERROR", "privacy_request_overdue", "a data-subject request is past its due date",
         request_id=request_id, request_type=kind, days_overdue=days_overdue)


def privacy_request_at_risk(request_id: str, kind: str, days_left: int) -> None:
    emit("WARNING", "privacy_request_at_risk", "a data-subject request is due soon",
         request_id=request_id, request_type=kind, days_left=days_left)


def warning_issued(category: str, module: str, line: int) -> None:
    """A Python warning, by category and place only: its text is never written, since
    pydicom's quote element values (a patient's name in an invalid-value warning)."""
    emit("WARNING", "warning_issued", "a library warning (its text is withheld)",
         category=category, module=module, line=line)


def route_warnings() -> None:
    """Send every Python warning of this process to :func:`warning_issued` instead of
    stderr. Each entry point calls this at import: ``warnings.catch_warnings`` blocks that
    silence pydicom are process-wide and not thread-safe, so with several requests in
    flight one thread's exit can re-enable warnings while another is still parsing; with
    this, what escapes is a JSON line with ids only."""
    import warnings

    def show(message: Any, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: Any = None) -> None:
        path = filename.replace("\\", "/")
        module = path.rsplit("site-packages/", 1)[1] if "site-packages/" in path else (
            path.rsplit("/", 1)[-1])
        warning_issued(category.__name__, module, lineno)

    warnings.showwarning = show
