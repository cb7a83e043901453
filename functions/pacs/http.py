"""Mapping of domain errors to HTTP responses, shared by the HTTP entry points."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
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
    from datetime import datetime

    from pacs.events import event_age_seconds

    return event_age_seconds(event_time, datetime.now(UTC)) > settings.event_max_age_seconds


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


def run_storage_event(function: str, event: Any, bucket_role: str,
                      handle: Callable[[Any, Any], Any]) -> Any:
    """The shared body of a storage-triggered entry point: log the delivery, ignore other
    buckets' events and events past the maximum age (both decided before any cloud client
    is built), then run ``handle(clients, storage_event)`` under :func:`run_event`."""
    from pacs import events
    from pacs.clients import default_clients
    from pacs.settings import get_settings

    attributes = dict(event.get_attributes())
    log_events.event_received(function, attributes)
    storage_event = events.storage_event(attributes, event.get_data() or {})
    settings = get_settings()
    if storage_event.bucket != getattr(settings, f"{bucket_role}_bucket"):
        log_events.event_ignored(function, storage_event.bucket, "other_bucket")
        return None
    if event_too_old(storage_event.time, settings):
        log_events.event_expired(function, attributes.get("id", ""))
        return None
    clients = default_clients()
    return run_event(function, lambda: handle(clients, storage_event), ce_id=attributes.get("id"))


def run_pubsub_json(function: str, event: Any, handle: Callable[[Any, Any], Any]) -> Any:
    """The shared body of a Pub/Sub-triggered entry point whose message is JSON: run
    ``handle(clients, body)`` under :func:`run_event` (a failure is redelivered)."""
    from pacs import events
    from pacs.clients import default_clients

    clients = default_clients()
    message = events.pubsub_message(event.get_data() or {})
    return run_event(function, lambda: handle(clients, message.json()),
                     message_id=message.message_id)

