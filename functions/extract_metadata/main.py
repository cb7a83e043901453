"""Header extraction for canonical instances (Storage finalize), and settling a series
(counts and preview) once an upload's instances are indexed (Pub/Sub)."""

import functions_framework

from pacs import events, guard, http, indexing, log_events, settle
from pacs.clients import default_clients
from pacs.settings import get_settings

guard.assert_safe_environment()


@functions_framework.cloud_event
def on_instance_finalized(event):
    """Finalize in the instances bucket: header → Firestore."""
    attributes = dict(event.get_attributes())
    log_events.event_received("on_instance_finalized", attributes)
    storage_event = events.storage_event(attributes, event.get_data() or {})
    settings = get_settings()
    if storage_event.bucket != settings.instances_bucket:  # decided before any client is built
        log_events.event_ignored("on_instance_finalized", storage_event.bucket, "other_bucket")
        return
    if http.event_too_old(storage_event.time, settings):
        log_events.event_expired("on_instance_finalized", attributes.get("id", ""))
        return
    clients = default_clients()
    http.run_event("on_instance_finalized", lambda: indexing.index_instance(clients, storage_event),
                   ce_id=attributes.get("id"))


@functions_framework.cloud_event
def settle_series(event):
    """Recompute a series' counts and build its preview (retried until indexed)."""
    clients = default_clients()
    message = events.pubsub_message(event.get_data() or {})
    http.run_event("settle_series", lambda: settle.settle_series(clients, message.json()),
                   message_id=message.message_id)
