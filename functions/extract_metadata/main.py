"""Header extraction for canonical instances (Storage finalize), and settling a series
(counts and preview) once an upload's instances are indexed (Pub/Sub)."""

import functions_framework
from pacs import guard, http, log_events
from pacs.indexing import catalog, settle

guard.assert_safe_environment()
log_events.route_warnings()


@functions_framework.cloud_event
def on_instance_finalized(event):
    """Finalize in the instances bucket: header → Firestore."""
    http.run_storage_event("on_instance_finalized", event, "instances", catalog.index_instance)


@functions_framework.cloud_event
def settle_series(event):
    """Recompute a series' counts and build its preview (retried until indexed)."""
    http.run_pubsub_json("settle_series", event, settle.settle_series)
