"""Keyed hashes of identifiers, and the object names built from them.

Document ids and object names never hold PHI: DICOM UIDs can encode dates, device serials
or patient numbers, so they appear only as HMAC-SHA256 digests keyed with a secret.
Keying by (uid, UID) also separates users: two users uploading the same study get
different documents and objects.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, NamedTuple


def keyed_hash(key: bytes, *parts: str) -> str:
    """HMAC-SHA256 of the parts (NUL-separated), as 32 hex characters."""
    message = "\x00".join(parts).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def study_key(key: bytes, uid: str, study_uid: str) -> str:
    return keyed_hash(key, "study", uid, study_uid)


def series_key(key: bytes, uid: str, series_uid: str) -> str:
    return keyed_hash(key, "series", uid, series_uid)


def instance_key(key: bytes, uid: str, sop_uid: str) -> str:
    return keyed_hash(key, "instance", uid, sop_uid)


class InstanceKeys(NamedTuple):
    """The keyed ids of one instance: its study, series and own."""

    study: str
    series: str
    instance: str


def instance_keys(key: bytes, uid: str, fields: Mapping[str, Any]) -> InstanceKeys:
    """All three keyed ids from an instance's header fields (computed once per instance)."""
    return InstanceKeys(study_key(key, uid, fields["StudyInstanceUID"]),
                        series_key(key, uid, fields["SeriesInstanceUID"]),
                        instance_key(key, uid, fields["SOPInstanceUID"]))


def log_id(key: bytes, value: str) -> str:
    """A short pseudonymous id for log lines (hashed UIDs, never the UIDs)."""
    return keyed_hash(key, "log", value)[:16]


def instance_object(uid: str, study: str, instance: str) -> str:
    """Canonical instance object: grouped by owner and study, so a study is one prefix."""
    return f"{uid}/{study}/{instance}.dcm"


# A series preview's file extension by media type: PNG for grey, JPEG for colour.
PREVIEW_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}


def preview_object(uid: str, study: str, series: str, extension: str = "png") -> str:
    return f"previews/{uid}/{study}/{series}.{extension}"


def upload_object(uid: str, upload_id: str) -> str:
    return f"{uid}/{upload_id}"


def erasure_marker(key: bytes, uid: str) -> str:
    """Document id of a user's erasure marker (pseudonymous: no uid stored)."""
    return keyed_hash(key, "erasure", uid)
