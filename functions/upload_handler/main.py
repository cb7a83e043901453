"""Upload entry points: start an upload (HTTP), process a finalized upload (Storage), and
continue a checkpointed archive (Pub/Sub)."""

import functions_framework
from pacs import guard, http, log_events
from pacs.auth import verify_caller
from pacs.clients import default_clients
from pacs.errors import BadRequest
from pacs.ingest import pipeline, uploads

guard.assert_safe_environment()
log_events.route_warnings()


@functions_framework.http
def create_upload(request):
    """POST {filename, size, content_type} → a resumable session for one uploads object;
    POST {files: [{filename, size, content_type}, ...]} → {uploads: [one per file]}, all
    of them or none (a folder, up to ``upload_batch_max`` files per request)."""

    def call():
        if request.method != "POST":
            raise BadRequest("use POST", code="method_not_allowed")
        clients = default_clients()
        caller = verify_caller(request.headers, clients.firebase_app)
        raw = request.get_json(silent=True)
        origin = request.headers.get("Origin")
        settings = clients.settings
        if uploads.is_batch(raw):
            files = uploads.batch_from_json(raw, settings.upload_batch_max)
            return {"uploads": uploads.start_uploads(clients.firestore, clients.storage,
                                                     settings, caller.uid, files, origin)}
        body = uploads.UploadRequest.from_json(raw)
        return uploads.start_upload(clients.firestore, clients.storage, settings, caller.uid,
                                    body, origin=origin)

    # A batch's body is larger than the default JSON cap (at most upload_batch_max files).
    return http.handle("create_upload", call, max_body_bytes=uploads.MAX_BODY_BYTES)


@functions_framework.cloud_event
def on_upload_finalized(event):
    """Finalize in the uploads bucket: check against the record, unzip safely, store."""
    http.run_storage_event("on_upload_finalized", event, "uploads",
                           pipeline.handle_upload_finalized)


@functions_framework.cloud_event
def continue_upload(event):
    """A checkpoint message: continue an archive where its last batch stopped."""
    http.run_pubsub_json("continue_upload", event, pipeline.handle_continuation)
