"""Calls to the PACS HTTP functions with the signed-in user's token."""

from __future__ import annotations

from typing import Any

import requests

from pacs_cli import endpoints, session
from pacs_cli.errors import CliError


def call(function: str, method: str = "GET", path: str = "", *, json: Any = None,
         params: dict[str, Any] | None = None, timeout: float = 60) -> Any:
    """Call an HTTP function; raise CliError with the server's reason on a non-2xx."""
    try:
        token = session.id_token()
    except session.AuthFailed as err:
        raise CliError(str(err), code="not_signed_in") from err
    url = endpoints.function_url(function).rstrip("/") + "/" + path.lstrip("/")
    resp = requests.request(method, url, json=json, params=params, timeout=timeout,
                            headers={"Authorization": f"Bearer {token}"})
    try:
        body = resp.json()
    except ValueError:
        body = {"message": resp.text[:200]}
    if not resp.ok:
        raise CliError(body.get("message") or f"HTTP {resp.status_code}",
                       code=body.get("error", f"http_{resp.status_code}"))
    return body
