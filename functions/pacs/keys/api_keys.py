"""API keys: lasting, named, scoped credentials for tools that cannot sign in to Firebase
(an Orthanc peer, a modality gateway, a nightly script).

A key is ``api_keys/{key_id}``: owner, name, scope (``read`` or ``read-write``), the keyed
hash of the key (HMAC-SHA256 under ``PACS_HASH_KEY``; the key itself is never stored, and
without the hash key nothing is created or accepted), created, expires (at most a year),
last used, revoked. The key is ``pacsk_{key_id}_{43 random url-safe characters}`` (256
random bits), shown once at creation and presented as ``Authorization: Bearer <key>``; the
``pacsk_`` prefix tells it from an ID token and lets secret scanners find leaked ones.

Creating one needs a sign-in of the last ``recent_signin_seconds`` (as export and erasure
do). Revoking is at once: every request re-reads the key in the transaction that records
its use (:mod:`pacs.keys.access`). While the account is restricted (``users/{uid}.restricted``,
:mod:`pacs.privacy.profile`) every key is *suspended*: refused, and working again when the
restriction is lifted. An erasure deletes the keys (``api_keys`` in
:mod:`pacs.privacy.personal_data`); the export includes their metadata, never the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from pacs import log_events, markers
from pacs.auth import Caller
from pacs.errors import AuthError, BadRequest, Forbidden, NotFound, PacsError, TransientError
from pacs.links import signing
from pacs.privacy import requests as privacy_requests

COLLECTION = "api_keys"
PREFIX = "pacsk_"
KEY = re.compile(r"^pacsk_([0-9a-f]{20})_([A-Za-z0-9_-]{43})$")
KEY_ID = re.compile(r"^[0-9a-f]{20}$")
READ, READ_WRITE = "read", "read-write"
SCOPES = (READ, READ_WRITE)
NAME_MAX = 64
DEFAULT_DAYS = 90
MAX_DAYS = 365
KEYS_MAX = 50  # keys not revoked, per account
LIST_MAX = 200
# ``last_used_at`` is written at most this often per key (a busy tool would otherwise
# write the key document on every request; the daily access record counts every one).
LAST_USE_STEP = timedelta(seconds=60)


class TooManyKeys(PacsError):
    """The account already has :data:`KEYS_MAX` keys that are not revoked."""

    code = "too_many_keys"
    http_status = 409


def key_ref(firestore: Any, key_id: str) -> Any:
    return firestore.collection(COLLECTION).document(key_id)


def key_hash(hash_key: bytes, key_id: str, secret: str) -> str:
    """The stored form of a key: HMAC-SHA256 under the deployment's hash key (hex).

    Fails closed (503 ``hash_key_missing``) when there is no hash key: a key hashed without
    one could be checked by anyone holding a copy of the database."""
    if not hash_key:
        raise TransientError("API keys are unavailable: the hash key is not configured",
                             code="hash_key_missing")
    message = "\x00".join(("api-key", key_id, secret)).encode("ascii")
    return hmac.new(hash_key, message, hashlib.sha256).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh ``(key_id, secret, key)``."""
    key_id, secret = secrets.token_hex(10), secrets.token_urlsafe(32)
    return key_id, secret, f"{PREFIX}{key_id}_{secret}"


def is_api_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (by its prefix)."""
    return token.startswith(PREFIX)


def status_of(doc: dict[str, Any], now: datetime, restricted: bool) -> str:
    """``revoked``, ``expired``, ``suspended`` (the account is restricted) or ``active``."""
    if doc.get("revoked"):
        return "revoked"
    if doc["expires_at"] <= now:
        return "expired"
    return "suspended" if restricted else "active"


def public_key(key_id: str, doc: dict[str, Any], now: datetime, restricted: bool
               ) -> dict[str, Any]:
    """What the owner sees of a key (never its hash)."""
    def when(value: Any) -> str | None:
        return signing.iso(value) if isinstance(value, datetime) else None

    return {"key_id": key_id, "name": doc.get("name"), "scope": doc.get("scope"),
            "hint": f"{PREFIX}{key_id}_…", "created_at": when(doc.get("created_at")),
            "expires_at": when(doc.get("expires_at")),
            "last_used_at": when(doc.get("last_used_at")),
            "revoked": bool(doc.get("revoked")), "revoked_at": when(doc.get("revoked_at")),
            "status": status_of(doc, now, restricted)}


def account_restricted(firestore: Any, uid: str) -> bool:
    """Whether the account's processing is restricted (``users/{uid}.restricted``)."""
    snap = firestore.collection("users").document(uid).get(field_paths=["restricted"])
    return snap.exists and (snap.to_dict() or {}).get("restricted") is True


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX \
            or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRequest(f"name the key: 1 to {NAME_MAX} printable characters",
                         code="bad_name")
    return name.strip()


def _days(body: dict[str, Any]) -> int:
    days = body.get("expires_in_days", DEFAULT_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"expires_in_days must be a whole number from 1 to {MAX_DAYS}",
                         code="bad_expires_in_days")
    return days


def _owner_keys(firestore: Any, uid: str) -> list[Any]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = firestore.collection(COLLECTION).where(filter=FieldFilter("owner", "==", uid))
    return list(query.limit(LIST_MAX).stream())


def create_key(clients: Any, caller: Caller, body: dict[str, Any], now: datetime
               ) -> dict[str, Any]:
    """``POST /keys {name, scope, expires_in_days?}`` on a recent sign-in.

    Returns
    -------
    dict
        The key's public fields and ``key``, the key itself (shown this once).
    """
    fs, settings = clients.firestore, clients.settings
    privacy_requests.require_recent_sign_in(caller, settings, now, "creating an API key")
    name, days = _name(body), _days(body)
    scope = body.get("scope")
    if scope not in SCOPES:
        raise BadRequest("scope must be read or read-write", code="bad_scope")
    uid = caller.uid
    if account_restricted(fs, uid):
        raise Forbidden("processing of this account is restricted: no new API keys",
                        code="restricted")
    live = [s for s in _owner_keys(fs, uid) if not (s.to_dict() or {}).get("revoked")]
    if len(live) >= KEYS_MAX:
        raise TooManyKeys(f"at most {KEYS_MAX} keys: revoke one first")
    key_id, secret, key = new_key()
    doc = {"owner": uid, "name": name, "scope": scope,
           "key_hash": key_hash(settings.hash_key, key_id, secret), "created_at": now,
           "expires_at": now + timedelta(days=days), "last_used_at": None,
           "revoked": False, "revoked_at": None}
    try:  # the marker is read in the transaction that creates the key
        markers.guarded_write(fs, settings.hash_key, uid,
                              lambda tx: tx.create(key_ref(fs, key_id), doc))
    except markers.ErasureBegan:
        raise Forbidden("your account is being erased", code="erasure_in_progress") from None
    log_events.emit("INFO", "api_key_created", "API key created", uid=uid, key=key_id,
                    scope=scope, days=days)
    return {**public_key(key_id, doc, now, False), "key": key}


def list_keys(firestore: Any, uid: str, now: datetime) -> dict[str, Any]:
    """``GET /keys``: the owner's keys, newest first, and whether they are suspended."""
    restricted = account_restricted(firestore, uid)
    snaps = sorted(_owner_keys(firestore, uid),
                   key=lambda s: (s.to_dict() or {}).get("created_at"), reverse=True)
    return {"keys": [public_key(s.id, s.to_dict() or {}, now, restricted) for s in snaps],
            "suspended": restricted}


def revoke_key(firestore: Any, uid: str, key_id: Any, now: datetime) -> dict[str, Any]:
    """``DELETE /keys/{key_id}``: revoke at once (idempotent). Not yours = unknown = 404."""
    from google.api_core.exceptions import FailedPrecondition

    if not isinstance(key_id, str) or not KEY_ID.match(key_id):
        raise NotFound("no such key", code="not_found")
    ref = key_ref(firestore, key_id)
    for _ in range(5):
        snap = ref.get()
        doc = snap.to_dict() if snap.exists else None
        if not doc or doc.get("owner") != uid:
            raise NotFound("no such key", code="not_found")
        if doc.get("revoked"):
            break
        try:
            ref.update({"revoked": True, "revoked_at": now},
                       option=firestore.write_option(last_update_time=snap.update_time))
        except FailedPrecondition:  # a use stamped last_used_at meanwhile: read again
            continue
        doc = {**doc, "revoked": True, "revoked_at": now}
        log_events.emit("INFO", "api_key_revoked", "API key revoked", uid=uid, key=key_id)
        break
    else:
        raise TransientError("busy: try again", code="busy")
    return public_key(key_id, doc, now, account_restricted(firestore, uid))


def check_key(key_id: str, doc: dict[str, Any] | None, secret: str, hash_key: bytes,
              now: datetime, restricted: bool) -> dict[str, Any]:
    """Raise unless ``doc`` is a usable key matching ``secret``: 401 ``invalid_key`` (unknown
    or wrong), ``key_revoked``, ``key_expired``; 403 ``key_suspended`` (restriction)."""
    if not doc or not hmac.compare_digest(str(doc.get("key_hash", "")),
                                          key_hash(hash_key, key_id, secret)):
        raise AuthError("invalid API key", code="invalid_key")
    status = status_of(doc, now, restricted)
    if status == "revoked":
        raise AuthError("this API key was revoked", code="key_revoked")
    if status == "expired":
        raise AuthError("this API key has expired: create a new one", code="key_expired")
    if status == "suspended":
        raise Forbidden("API keys are suspended while processing of the account is restricted",
                        code="key_suspended")
    return doc


def lookup(firestore: Any, token: str, hash_key: bytes, now: datetime
           ) -> tuple[str, str, dict[str, Any]]:
    """``(key_id, secret, document)`` of a presented key that matches and is neither revoked
    nor expired (restriction and erasure are checked where its use is recorded)."""
    match = KEY.match(token)
    if not match:
        raise AuthError("invalid API key", code="invalid_key")
    key_id, secret = match.group(1), match.group(2)
    snap = key_ref(firestore, key_id).get()
    doc = check_key(key_id, snap.to_dict() if snap.exists else None, secret, hash_key, now,
                    restricted=False)
    return key_id, secret, doc

