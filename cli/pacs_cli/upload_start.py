"""Starting uploads: the ``create_upload`` function's answers (a Cloud Storage resumable
session per file, one file or a batch), with retries that stop at a quota or an hourly rate
limit (:data:`LIMIT_CODES`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from pacs_cli.uploader import _RETRY_STATUS, UploadError, _backoff

LIMIT_CODES = ("quota_exceeded", "rate_limited", "byte_rate_limited")


def _limit(resp: requests.Response) -> bool:
    """A 429 for a quota or an hourly rate (not worth retrying within seconds)."""
    if resp.status_code != 429:
        return False
    try:
        return resp.json().get("error") in LIMIT_CODES
    except (ValueError, AttributeError):
        return False


def _post_create_upload(client: requests.Session, url: str, id_token: str | Callable[[], str],
                        body: dict, what: str, retries: int, backoff: float,
                        timeout: float | tuple[float, float]) -> Any:
    """POST ``body`` to ``create_upload``; retries connection errors, 429 (but a limit's)
    and 5xx; other errors raise ``UploadError`` with the function's ``error`` code and
    ``message``."""
    failures = 0
    while True:
        token = id_token() if callable(id_token) else id_token
        try:
            resp = client.post(url, json=body, timeout=timeout,
                               headers={"Authorization": f"Bearer {token}"})
        except (requests.ConnectionError, requests.Timeout) as err:
            resp, problem = None, f"{type(err).__name__}: {err}"
        if resp is not None and resp.status_code == 200:
            try:
                return resp.json()
            except ValueError as err:
                raise UploadError("create_upload answered with something not JSON",
                                  code="bad_response") from err
        if resp is not None and (resp.status_code not in _RETRY_STATUS or _limit(resp)):
            code, message = f"http_{resp.status_code}", resp.text[:300]
            try:
                answer = resp.json()
                code = str(answer.get("error", code))
                message = str(answer.get("message", message))
            except (ValueError, AttributeError):
                pass
            raise UploadError(f"create_upload refused {what}: {message}", code=code)
        if resp is not None:
            problem = f"HTTP {resp.status_code}"
        failures += 1
        if failures > retries:
            raise UploadError(f"create_upload failed: {problem}", code="network")
        _backoff(backoff, failures)


def make_start_upload(create_upload_url: str, id_token: str | Callable[[], str], *,
                      http: requests.Session | None = None, retries: int = 3,
                      backoff: float = 1.0,
                      timeout: float | tuple[float, float] = 30.0) -> Callable[[dict], dict]:
    """A ``start_upload`` callable that POSTs to the ``create_upload`` function with
    ``Authorization: Bearer <id token>``. ``id_token`` may be a callable (e.g.
    ``session.id_token``), asked before every call so long runs keep a fresh token.
    Retries connection errors, 429 and 5xx, except a 429 for a quota or an hourly rate
    (:data:`LIMIT_CODES`); other errors raise ``UploadError`` with the function's ``error``
    code and ``message``."""
    client = http or requests.Session()

    def start_upload(request: dict) -> dict:
        return _post_create_upload(client, create_upload_url, id_token, request,
                                   repr(request.get("filename")), retries, backoff, timeout)

    return start_upload


def make_start_batch(create_upload_url: str, id_token: str | Callable[[], str], *,
                     http: requests.Session | None = None, retries: int = 3,
                     backoff: float = 1.0, timeout: float | tuple[float, float] = 120.0
                     ) -> Callable[[list[dict]], list[dict]]:
    """A ``start_batch`` callable: one ``create_upload`` request for several files
    (``{"files": [...]}``), answered with one session per file, in order, for all of them
    or none. Errors as :func:`make_start_upload`."""
    client = http or requests.Session()

    def start_batch(requests_: list[dict]) -> list[dict]:
        answer = _post_create_upload(client, create_upload_url, id_token,
                                     {"files": requests_}, f"{len(requests_)} files", retries,
                                     backoff, timeout)
        sessions = answer.get("uploads") if isinstance(answer, dict) else None
        if not isinstance(sessions, list) or len(sessions) != len(requests_):
            raise UploadError("create_upload answered without a session per file",
                              code="bad_response")
        return sessions

    return start_batch
