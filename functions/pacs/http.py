"""Mapping of domain errors to HTTP responses, shared by the HTTP entry points."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from pacs import log_events
from pacs.errors import PacsError

# The largest request body an HTTP function reads unless it opts out (every route takes a
# small JSON object; a multipart STOW route would pass ``max_body_bytes=None``).
JSON_BODY_MAX_BYTES = 64 * 1024

JSON_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def json_response(body: Any, status: int = 200) -> tuple[Any, int, dict[str, str]]:
    import flask

    return flask.json.dumps(body), status, dict(JSON_HEADERS)


def _refuse_body(function: str, err: PacsError) -> Any:
    """The 413 answer, as a streamed response: functions-framework reads the whole request
    after any other response (into memory, however large or endless a chunked body is), but
    not after a streamed one; gunicorn then discards the unread rest in small pieces."""
    import flask

    log_events.request_refused(function, err.http_status, err.code)
    body = flask.json.dumps({"error": err.code, "message": str(err)})
    return flask.Response(iter([body]), status=err.http_status, headers=dict(JSON_HEADERS))


class BodyTooLarge(PacsError):
    """The request body is over the route's limit."""

    code = "body_too_large"
    http_status = 413


def cap_body(max_body_bytes: int) -> None:
    """Read the current request's body (cached for ``get_json``) if it is at most
    ``max_body_bytes``, else raise :class:`BodyTooLarge`. A declared ``Content-Length`` over
    the limit is refused unread; a chunked body is read at most one byte past the limit
    (Flask's per-request ``max_content_length``, which also bounds any later read)."""
    import flask
    from werkzeug.exceptions import RequestEntityTooLarge

    if not flask.has_request_context():
        return
    request = flask.request
    # One byte more than allowed: a chunked body that fills it is over the limit (a stream
    # cut at exactly the limit cannot tell "that was all" from "there is more").
    request.max_content_length = max_body_bytes + 1
    try:
        if (request.content_length or 0) > max_body_bytes:
            raise RequestEntityTooLarge()
        too_large = len(request.get_data(cache=True)) > max_body_bytes
    except RequestEntityTooLarge:
        too_large = True
    if too_large:
        raise BodyTooLarge(f"the request body is over {max_body_bytes} bytes, the limit of "
                           "this endpoint: send a smaller JSON object")


def handle(function: str, call: Callable[[], Any], *,
           max_body_bytes: int | None = JSON_BODY_MAX_BYTES) -> tuple[Any, int, dict[str, str]]:
    """Run ``call`` and map :class:`PacsError` to its status with a JSON reason.

    The request body is capped first (:func:`cap_body`, 413 ``body_too_large``): every HTTP
    entry point gets the JSON limit by default; a route that streams large bodies itself
    (multipart STOW) passes ``max_body_bytes=None`` and bounds its own reads."""
    try:
        if max_body_bytes is not None:
            cap_body(max_body_bytes)
        result = call()
    except BodyTooLarge as err:
        return _refuse_body(function, err)
    except PacsError as err:
        log_events.request_refused(function, err.http_status, err.code)
        return json_response({"error": err.code, "message": str(err)}, err.http_status)
    except Exception as err:  # noqa: BLE001 - last resort: never leak internals to clients
        log_events.unexpected_error(function, type(err).__name__)
        return json_response({"error": "internal", "message": "internal error"}, 500)
    if _is_response(result):  # a route with its own media type or a streamed body
        return result
    if isinstance(result, tuple):
        return json_response(result[0], result[1])
    return json_response(result)


def _is_response(result: Any) -> bool:
    from werkzeug.wrappers import Response

    return isinstance(result, Response)


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

