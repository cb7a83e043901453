"""Mapping of domain errors to HTTP responses, shared by the HTTP entry points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pacs import log_events
from pacs.errors import PacsError

JSON_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def json_response(body: Any, status: int = 200) -> tuple[Any, int, dict[str, str]]:
    import flask

    return flask.json.dumps(body), status, dict(JSON_HEADERS)


def handle(function: str, call: Callable[[], Any]) -> tuple[Any, int, dict[str, str]]:
    """Run ``call`` and map :class:`PacsError` to its status with a JSON reason."""
    try:
        result = call()
    except PacsError as err:
        log_events.request_refused(function, err.http_status, err.code)
        return json_response({"error": err.code, "message": str(err)}, err.http_status)
    except Exception as err:  # noqa: BLE001 - last resort: never leak internals to clients
        log_events.unexpected_error(function, type(err).__name__)
        return json_response({"error": "internal", "message": "internal error"}, 500)
    if isinstance(result, tuple):
        return json_response(result[0], result[1])
    return json_response(result)


def not_implemented(function: str) -> tuple[Any, int, dict[str, str]]:
    """The 501 answer of an endpoint whose issue has not landed yet."""
    log_events.not_implemented(function)
    return json_response(
        {"error": "not_implemented", "message": f"{function} is not implemented yet"}, 501
    )
