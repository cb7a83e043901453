"""Upload entry points: start an upload (HTTP), process a finalized upload (Storage), and
continue a checkpointed archive (Pub/Sub)."""

import functions_framework

from pacs import events, guard, http, ingest, log_events, uploads
from pacs.auth import verify_caller
from pacs.clients import default_clients
from pacs.errors import BadRequest
from pacs.settings import get_settings

guard.assert_safe_environment()


@functions_framework.http
def create_upload(request):
    """POST {filename, size, content_type} → a resumable session for one uploads object."""

    def call():
        if request.method != "POST":
            raise BadRequest("use POST", code="method_not_allowed")
        clients = default_clients()
        caller = verify_caller(request.headers, clients.firebase_app)
        body = uploads.UploadRequest.from_json(request.get_json(silent=True))
        return uploads.start_upload(clients.firestore, clients.storage, clients.settings,
                                    caller.uid, body, origin=request.headers.get("Origin"))

    return http.handle("create_upload", call)


@functions_framework.cloud_event
def on_upload_finalized(event):
    """Finalize in the uploads bucket: check against the record, unzip safely, store."""
    attributes = dict(event.get_attributes())
    log_events.event_received("on_upload_finalized", attributes)
    storage_event = events.storage_event(attributes, event.get_data() or {})
    settings = get_settings()
    if storage_event.bucket != settings.uploads_bucket:  # decided before any client is built
        log_events.event_ignored("on_upload_finalized", storage_event.bucket, "other_bucket")
        return
    if http.event_too_old(storage_event.time, settings):
        log_events.event_expired("on_upload_finalized", attributes.get("id", ""))
        return
    clients = default_clients()
    http.run_event("on_upload_finalized",
                   lambda: ingest.handle_upload_finalized(clients, storage_event),
                   ce_id=attributes.get("id"))


@functions_framework.cloud_event
def continue_upload(event):
    """A checkpoint message: continue an archive where its last batch stopped."""
    clients = default_clients()
    message = events.pubsub_message(event.get_data() or {})
    http.run_event("continue_upload", lambda: ingest.handle_continuation(clients, message.json()),
                   message_id=message.message_id)
