"""Retention jobs, sent by Cloud Scheduler through Pub/Sub."""

import functions_framework
from pacs import events, guard, log_events

guard.assert_safe_environment()


@functions_framework.cloud_event
def run_retention_job(event):
    """Receive a scheduled job message; the jobs themselves land with the retention issue."""
    log_events.event_received("run_retention_job", dict(event.get_attributes()))
    message = events.pubsub_message(event.get_data() or {})
    job = str(message.json().get("job", "")) if message.data else ""
    log_events.scheduled_job_received(job, message.message_id)
    log_events.not_implemented(f"run_retention_job:{job}")
