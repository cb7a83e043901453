"""Header extraction for canonical instances (Storage finalize, instances bucket)."""

import functions_framework
from pacs import guard, log_events

guard.assert_safe_environment()


@functions_framework.cloud_event
def on_instance_finalized(event):
    """Finalize of an object in the instances bucket."""
    log_events.event_received("on_instance_finalized", dict(event.get_attributes()))
