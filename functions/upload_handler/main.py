"""Upload entry points: start an upload (HTTP), process a finalized upload (Storage), and
continue a checkpointed archive (Pub/Sub)."""

import functions_framework
from pacs import guard, http
from pacs.auth import verify_caller
from pacs.clients import default_clients
from pacs.errors import BadRequest
from pacs.ingest import pipeline, uploads

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
    http.run_storage_event("on_upload_finalized", event, "uploads",
                           pipeline.handle_upload_finalized)


@functions_framework.cloud_event
def continue_upload(event):
    """A checkpoint message: continue an archive where its last batch stopped."""
    http.run_pubsub_json("continue_upload", event, pipeline.handle_continuation)
