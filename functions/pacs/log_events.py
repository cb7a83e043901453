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
