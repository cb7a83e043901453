"""Firestore values as JSON for API answers and exports (one conversion, so every
endpoint spells times, bytes and references alike)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any


def plain(value: Any) -> Any:
    """A Firestore value as JSON: times in ISO 8601 UTC, bytes in base64, references as
    paths, maps and lists converted throughout."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "path") and hasattr(value, "id") and hasattr(value, "parent"):
        return value.path  # DocumentReference
    if hasattr(value, "latitude") and hasattr(value, "longitude"):
        return {"latitude": value.latitude, "longitude": value.longitude}
    return value
