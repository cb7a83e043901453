"""Signed URLs for viewer access: V4, ``GET``, one object, its generation pinned.

A signed URL is the only way bytes leave the instances and derived buckets (``storage.rules``
denies every client read). Each URL names exactly one object and one generation, so it can
neither be stretched to another object nor to a later upload under the same name, and it
expires after the link lifetime (``Settings.link_ttl_seconds``, never above one hour).

Two signers produce the same URLs:

- :func:`key_file_signer`: a service-account key file. The local cloud uses a key generated
  for its ``demo-*`` project (:func:`ensure_local_key`); nothing else has the private key.
- :func:`iam_signer`: no key file. Every signature is one call to the IAM Credentials
  ``signBlob`` API as the function's service account, which needs
  ``roles/iam.serviceAccountTokenCreator`` on itself. The HTTP transport and the source
  credentials are arguments, so tests drive the real google-auth IAM code with a fake
  transport.

Signing is CPU-bound with a key file and network-bound through IAM, so batches are signed in
parallel (:func:`sign_many`); large series are signed a page at a time by the caller.

Measured cost (``bench/signing.py``, 2-core container): a key-file signature takes about
0.35 ms, so a page of 500 URLs takes 0.2 s (threads do not help: RSA signing holds the GIL),
and ``/series`` answers a 500-URL page in about 0.3 s end to end on the local cloud. Through
IAM each URL is one ``signBlob`` round trip: at 50 ms per call, 16 parallel calls sign 500 URLs
in about 1.6 s (25 s one after another); a 3,000-slice series is six such pages.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google.auth.credentials

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
LOCAL_SIGNER_NAME = "pacs-url-signer"
# V4 signed URLs cannot live longer than seven days; our own cap is far below it.
V4_MAX_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class ObjectRef:
    """One object version: the only thing a signed URL may name.

    Attributes
    ----------
    bucket : str
        Bucket name.
    name : str
        Object name.
    generation : str
        Object generation; the URL is valid for this generation only.
    """

    bucket: str
    name: str
    generation: str


class UrlSigner:
    """Something that signs V4 URLs: signing credentials and the account they sign as.

    Parameters
    ----------
    credentials : google.auth.credentials.Signing
        Credentials whose ``sign_bytes`` produces RSA-SHA256 signatures.
    account : str
        Service-account email named in ``X-Goog-Credential``.
    kind : str
        ``key_file`` or ``iam`` (for logs and the report of which path signs).
    """

    def __init__(self, credentials: google.auth.credentials.Signing, account: str,
                 kind: str) -> None:
        self.credentials = credentials
        self.account = account
        self.kind = kind

    def __repr__(self) -> str:  # never the key
        return f"UrlSigner(kind={self.kind!r}, account={self.account!r})"


def key_file_signer(path: str | os.PathLike[str]) -> UrlSigner:
    """Sign with a service-account key file.

    Parameters
    ----------
    path : path-like
        A service-account key JSON (``type: service_account``).

    Returns
    -------
    UrlSigner
    """
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(str(path))
    return UrlSigner(credentials, credentials.service_account_email, "key_file")


class IamSigningCredentials(google.auth.credentials.Signing):
    """Signing credentials whose signatures come from the IAM ``signBlob`` API.

    Parameters
    ----------
    source_credentials : google.auth.credentials.Credentials
        Credentials that authorize the ``signBlob`` call (refreshed on demand).
    service_account_email : str
        The account that signs (and that the URLs name).
    request : google.auth.transport.Request
        HTTP transport for the IAM calls.
    """

    def __init__(self, source_credentials: Any, service_account_email: str,
                 request: Any) -> None:
        from google.auth import iam

        self._email = service_account_email
        self._signer = iam.Signer(request, source_credentials, service_account_email)

    def sign_bytes(self, message: bytes) -> bytes:
        return self._signer.sign(message)

    @property
    def signer_email(self) -> str:
        return self._email

    @property
    def signer(self) -> Any:
        return self._signer


def iam_signer(source_credentials: Any, service_account_email: str, request: Any) -> UrlSigner:
    """Sign through IAM ``signBlob`` as ``service_account_email`` (no key file).

    Parameters
    ----------
    source_credentials : google.auth.credentials.Credentials
        Usually ``google.auth.default()``'s credentials: the function's own identity.
    service_account_email : str
        Account to sign as.
    request : google.auth.transport.Request
        Transport for the IAM calls (a pooled session deployed; a fake in tests).

    Returns
    -------
    UrlSigner
    """
    credentials = IamSigningCredentials(source_credentials, service_account_email, request)
    return UrlSigner(credentials, service_account_email, "iam")


def default_iam_signer(service_account_email: str = "", pool_size: int = 16) -> UrlSigner:
    """The deployed signer: ``google.auth.default()`` credentials, refreshed, signing through
    IAM as ``service_account_email`` (or as the credentials' own account when empty).

    Parameters
    ----------
    service_account_email : str, optional
        Account to sign as; defaults to the runtime service account.
    pool_size : int, optional
        Connections kept open to the IAM API (parallel signing uses them).

    Returns
    -------
    UrlSigner
    """
    import google.auth
    import requests
    from google.auth.transport.requests import Request

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    request = Request(session)
    credentials.refresh(request)  # also resolves the metadata server's "default" account
    email = service_account_email or getattr(credentials, "service_account_email", "")
    if not email or email == "default":
        raise RuntimeError("no service account to sign URLs as: set PACS_SIGNING_SERVICE_ACCOUNT")
    return iam_signer(credentials, email, request)


def local_account(project_id: str) -> str:
    """Email of the demo signing account of a local-cloud project."""
    return f"{LOCAL_SIGNER_NAME}@{project_id}.iam.gserviceaccount.com"


def ensure_local_key(path: str | os.PathLike[str], project_id: str) -> Path:
    """Create a service-account key for a ``demo-*`` project at ``path`` unless one exists.

    The key is generated locally (RSA 2048) and written with mode 0600; it lives in the
    local cloud's state folder, which git ignores. Concurrent callers agree on one key: the
    file appears atomically (hard link of a complete temporary file) or not at all.

    Parameters
    ----------
    path : path-like
        Where the key JSON lives.
    project_id : str
        Must start with ``demo-``: real projects never get a generated key.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not project_id.startswith("demo-"):
        raise RuntimeError("refusing to generate a signing key for a non-demo project")
    target = Path(path)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": local_account(project_id),
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(info, out)
        try:
            os.link(tmp, target)
        except FileExistsError:
            pass  # another process won; its key is the key
    finally:
        tmp.unlink(missing_ok=True)
    return target


def signer_from_settings(settings: Any) -> UrlSigner:
    """The signer a process uses: the key file when one is configured (generated on first
    use for a ``demo-*`` project), else IAM ``signBlob`` as the configured or runtime account.

    Parameters
    ----------
    settings : pacs.settings.Settings

    Returns
    -------
    UrlSigner
    """
    if settings.signing_key_file:
        path = Path(settings.signing_key_file)
        if not path.exists() and settings.project_id.startswith("demo-"):
            ensure_local_key(path, settings.project_id)
        return key_file_signer(path)
    return default_iam_signer(settings.signing_service_account, settings.signing_workers)


def link_ttl(settings: Any, now: datetime, not_after: datetime | None = None) -> int:
    """Lifetime in seconds of URLs minted now: the configured lifetime, never above the cap,
    and never past ``not_after`` (a share's expiry). At least one second.

    Parameters
    ----------
    settings : pacs.settings.Settings
    now : datetime
        Current time (aware).
    not_after : datetime, optional
        Latest moment the URLs may be valid.

    Returns
    -------
    int
    """
    ttl = min(settings.link_ttl_seconds, settings.link_ttl_cap_seconds, V4_MAX_SECONDS)
    if not_after is not None:
        ttl = min(ttl, int((not_after - now).total_seconds()))
    return max(ttl, 1)


def expiry_of_batch(issued: datetime, ttl_seconds: int) -> datetime:
    """The expiry to report for URLs signed from ``issued`` on: their ``X-Goog-Date`` is at
    or after ``issued`` truncated to the second, so no URL expires before this moment."""
    return issued.replace(microsecond=0) + timedelta(seconds=ttl_seconds)


def sign_get_url(storage_client: Any, signer: UrlSigner, ref: ObjectRef, ttl_seconds: int,
                 endpoint: str) -> str:
    """One V4 signed ``GET`` URL for one object generation.

    Parameters
    ----------
    storage_client : google.cloud.storage.Client
        Used only to build the blob handle (no request is made).
    signer : UrlSigner
    ref : ObjectRef
    ttl_seconds : int
        Lifetime; the caller has capped it (:func:`link_ttl`).
    endpoint : str
        Scheme and host the URL points at (the emulator locally).

    Returns
    -------
    str
    """
    if not 0 < ttl_seconds <= V4_MAX_SECONDS:
        raise ValueError("signed URL lifetime out of range")
    if not ref.generation:
        raise ValueError("a signed URL must pin a generation")
    blob = storage_client.bucket(ref.bucket).blob(ref.name)
    return blob.generate_signed_url(
        version="v4", expiration=timedelta(seconds=ttl_seconds), method="GET",
        credentials=signer.credentials, api_access_endpoint=endpoint,
        query_parameters={"generation": str(ref.generation)})


def sign_many(storage_client: Any, signer: UrlSigner, refs: Sequence[ObjectRef],
              ttl_seconds: int, endpoint: str, workers: int = 16,
              sign: Callable[..., str] = sign_get_url) -> list[str]:
    """Sign many objects in parallel; the URLs come back in the order of ``refs``.

    Parameters
    ----------
    storage_client, signer, ttl_seconds, endpoint
        As for :func:`sign_get_url`.
    refs : sequence of ObjectRef
    workers : int, optional
        Parallel signatures (IAM round trips overlap; key-file signing is CPU-bound).

    Returns
    -------
    list of str
    """
    if not refs:
        return []
    if len(refs) == 1 or workers <= 1:
        return [sign(storage_client, signer, ref, ttl_seconds, endpoint) for ref in refs]
    with ThreadPoolExecutor(max_workers=min(workers, len(refs))) as pool:
        return list(pool.map(lambda r: sign(storage_client, signer, r, ttl_seconds, endpoint),
                             refs))


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` (what the API returns for every time)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
