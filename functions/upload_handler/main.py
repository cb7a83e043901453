"""Upload entry points: start an upload (HTTP) and process a finalized upload (Storage)."""

import functions_framework
from pacs import guard, http, log_events

guard.assert_safe_environment()


@functions_framework.http
def create_upload(request):
    """Start an upload: not implemented until the ingest issue lands."""
    return http.not_implemented("create_upload")


@functions_framework.cloud_event
def on_upload_finalized(event):
    """Finalize of an object in the uploads bucket."""
    log_events.event_received("on_upload_finalized", dict(event.get_attributes()))
