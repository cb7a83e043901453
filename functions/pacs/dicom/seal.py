"""The parsed header, sealed into the canonical object's metadata.

Ingest has already parsed every instance it stores; reading the object back in
``on_instance_finalized`` only to parse the same header again doubled the storage traffic
per instance. So ingest seals the instance fields into the object's custom metadata and
the indexer opens the seal instead of downloading the object.

Sealed, not plain: finalize notifications (and Eventarc's CloudEvents) carry an object's
metadata, so plain header fields would copy PHI into every event. AES-GCM with a key
derived from the deployment's hash key keeps them unreadable there, and binding the object
name as associated data means a seal copied onto another object does not open. Anything
that does not open (absent, tampered, another key, too large) makes the indexer fall back
to reading the object, so the seal is an optimisation, never a source of truth on its own.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
from typing import Any

METADATA_KEY = "pacs-header"
VERSION = b"v1"
# Custom metadata is limited to 8 KiB per object in all; stay well inside it.
MAX_SEAL_CHARS = 4096
_NONCE_BYTES = 12


@functools.lru_cache(maxsize=4)
def _seal_key(hash_key: bytes) -> bytes:
    """A key for sealing only, derived so the hash key itself never encrypts anything."""
    return hmac.new(hash_key, b"pacs header seal " + VERSION, hashlib.sha256).digest()


def seal(hash_key: bytes, object_name: str, fields: dict[str, Any]) -> str | None:
    """Encrypt ``fields`` (JSON-serializable) for the object ``object_name``.

    Returns
    -------
    str or None
        The metadata value, or None when it would be too large (the indexer then reads
        the object).
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    plain = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
    nonce = os.urandom(_NONCE_BYTES)
    sealed = nonce + AESGCM(_seal_key(hash_key)).encrypt(nonce, plain, object_name.encode())
    token = VERSION.decode() + "." + base64.urlsafe_b64encode(sealed).decode()
    return token if len(token) <= MAX_SEAL_CHARS else None


def open_seal(hash_key: bytes, object_name: str, token: str | None) -> dict[str, Any] | None:
    """The fields sealed for ``object_name``, or None when the seal is absent or does not
    open (tampered, sealed for another object or under another key)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not token or len(token) > MAX_SEAL_CHARS or not token.startswith(VERSION.decode() + "."):
        return None
    try:
        raw = base64.urlsafe_b64decode(token.split(".", 1)[1].encode())
        plain = AESGCM(_seal_key(hash_key)).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                                   object_name.encode())
        fields = json.loads(plain)
    except (InvalidTag, ValueError):
        return None
    return fields if isinstance(fields, dict) else None
