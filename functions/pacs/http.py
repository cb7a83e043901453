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


def event_too_old(event_time: str, settings) -> bool:
    """Eventarc retries for 24 h; past the configured max age an event is dropped (logged)."""
    from datetime import datetime, timezone

    from pacs.events import event_age_seconds

    return event_age_seconds(event_time, datetime.now(timezone.utc)) > settings.event_max_age_seconds


def run_event(function: str, call: Callable[[], Any], **ids: Any) -> Any:
    """Run an event handler. Unexpected errors are logged by type only (their text may quote
    file content) and re-raised without their chain, so the non-2xx answer makes Eventarc
    retry while no exception text reaches the logs."""
    from pacs.errors import TransientError

    try:
        return call()
    except TransientError as err:
        log_events.event_retry(function, err.code, **ids)
        raise TransientError("retry later") from None
    except Exception as err:  # noqa: BLE001 - classified and re-raised below
        log_events.unexpected_error(function, type(err).__name__, **ids)
        raise TransientError("unexpected error; will be retried") from None
