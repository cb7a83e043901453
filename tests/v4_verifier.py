"""An offline verifier of Cloud Storage V4 signed URLs, written from Google's specification
(https://cloud.google.com/storage/docs/authentication/signatures), not from the client
library: it rebuilds the canonical request and the string to sign from the URL alone and
checks the RSA-SHA256 signature against a public key.

fake-gcs-server serves any URL without checking its signature, so this is what proves the
signatures are right.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ALGORITHM = "GOOG4-RSA-SHA256"


class BadSignedUrl(AssertionError):
    """The URL does not verify; the message says which check failed."""


@dataclass(frozen=True)
class VerifiedUrl:
    bucket: str
    object_name: str
    generation: str | None
    account: str
    signed_at: datetime
    expires_at: datetime
    lifetime_seconds: int


def public_key_of_key_file(path: str | Path):
    """The public half of a service-account key JSON."""
    info = json.loads(Path(path).read_text())
    private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    return private.public_key()


def _encode(value: str) -> str:
    # RFC 3986 percent-encoding: everything but the unreserved characters A-Z a-z 0-9 - . _ ~
    return urllib.parse.quote(value, safe="-._~")


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((_encode(k), _encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def verify(url: str, public_key, *, now: datetime | None = None, method: str = "GET",
           max_lifetime: int | None = None) -> VerifiedUrl:
    """Verify a V4 signed URL; raise :class:`BadSignedUrl` unless every check passes.

    Checks: the algorithm, the credential scope, ``host`` as the only signed header, the
    lifetime (and ``max_lifetime`` when given), that ``now`` is inside the validity window,
    and the signature over the rebuilt canonical request.
    """
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    names = [k for k, _ in pairs]
    if len(names) != len(set(names)):
        raise BadSignedUrl("repeated query parameter")
    params = dict(pairs)
    try:
        signature = bytes.fromhex(params.pop("X-Goog-Signature"))
        algorithm = params["X-Goog-Algorithm"]
        credential = params["X-Goog-Credential"]
        date = params["X-Goog-Date"]
        lifetime = int(params["X-Goog-Expires"])
        signed_headers = params["X-Goog-SignedHeaders"]
    except (KeyError, ValueError) as err:
        raise BadSignedUrl(f"missing or malformed signing parameter: {err}") from None
    if algorithm != ALGORITHM:
        raise BadSignedUrl(f"algorithm {algorithm}")
    account, _, scope = credential.partition("/")
    scope_parts = scope.split("/")
    if len(scope_parts) != 4 or scope_parts[1:] != ["auto", "storage", "goog4_request"]:
        raise BadSignedUrl(f"credential scope {scope}")
    if scope_parts[0] != date[:8]:
        raise BadSignedUrl("credential date is not the request date")
    if signed_headers != "host":
        raise BadSignedUrl(f"signed headers {signed_headers}")
    if not 1 <= lifetime <= 604800:
        raise BadSignedUrl(f"lifetime {lifetime}")
    if max_lifetime is not None and lifetime > max_lifetime:
        raise BadSignedUrl(f"lifetime {lifetime} above {max_lifetime}")
    signed_at = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expires_at = signed_at + timedelta(seconds=lifetime)
    if now is not None and not signed_at - timedelta(seconds=5) <= now < expires_at:
        raise BadSignedUrl("outside the validity window")
    canonical_headers = f"host:{parts.netloc.lower()}\n"
    canonical_request = "\n".join([
        method, parts.path, canonical_query([(k, v) for k, v in pairs
                                             if k != "X-Goog-Signature"]),
        canonical_headers, signed_headers, "UNSIGNED-PAYLOAD"])
    string_to_sign = "\n".join([ALGORITHM, date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    try:
        public_key.verify(signature, string_to_sign.encode(), padding.PKCS1v15(),
                          hashes.SHA256())
    except InvalidSignature:
        raise BadSignedUrl("signature does not verify") from None
    path = urllib.parse.unquote(parts.path)
    bucket, _, object_name = path.lstrip("/").partition("/")
    return VerifiedUrl(bucket, object_name, params.get("generation"), account, signed_at,
                       expires_at, lifetime)


def replace_param(url: str, name: str, value: str) -> str:
    """The URL with one query parameter's value replaced (for tampering tests)."""
    parts = urllib.parse.urlsplit(url)
    pairs = [(k, value if k == name else v)
             for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(pairs)))
