"""CORS for the DICOMweb function: pages on the Hosting origins (``Settings.hosting_origins``)
may call it from the browser with an ``Authorization`` header (OHIF served from another of
our origins, a tool page); every other origin gets no CORS headers, so browsers keep its
pages out. No cookies are involved (credentials are headers), so credentialed CORS is
never allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = ("Authorization, Accept, Content-Type, If-None-Match, X-Share-Token, "
                 "X-Share-View")
EXPOSE_HEADERS = "Content-Type, Content-Length, Content-Location, ETag, Warning"
MAX_AGE_SECONDS = 600


def allowed_origin(headers: Mapping[str, str], settings: Any) -> str | None:
    """The request's ``Origin`` when it is one of the Hosting origins, else None."""
    origin = (headers.get("Origin") or headers.get("origin") or "").strip()
    return origin if origin and origin in settings.hosting_origins else None


def response_headers(headers: Mapping[str, str], settings: Any) -> dict[str, str]:
    """The CORS headers of an answer to a request (none for other origins)."""
    origin = allowed_origin(headers, settings)
    if origin is None:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Expose-Headers": EXPOSE_HEADERS}


def preflight(headers: Mapping[str, str], settings: Any) -> tuple[str, int, dict[str, str]]:
    """The answer to ``OPTIONS``: 204, with the allowed methods and headers for a Hosting
    origin asking for one of :data:`ALLOW_METHODS`; without CORS headers otherwise."""
    out = {"Allow": ALLOW_METHODS, "Cache-Control": "no-store"}
    method = (headers.get("Access-Control-Request-Method") or "").strip().upper()
    origin = allowed_origin(headers, settings)
    if origin is not None and method in ALLOW_METHODS.split(", "):
        out.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": str(MAX_AGE_SECONDS)})
    return "", 204, out


def add_headers(result: Any, headers: Mapping[str, str], settings: Any) -> Any:
    """``result`` of :func:`pacs.http.handle` (a response or a ``(body, status, headers)``
    tuple) with the CORS headers of the request added."""
    extra = response_headers(headers, settings)
    if not extra:
        return result
    if isinstance(result, tuple):
        body, status, own = result
        return body, status, {**own, **extra}
    for name, value in extra.items():
        result.headers[name] = value
    return result
