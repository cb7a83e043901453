"""Data-subject rights: the HTTP endpoint and the Pub/Sub job runner."""

import functions_framework
from pacs import events, guard, http, log_events

guard.assert_safe_environment()


@functions_framework.http
def privacy_requests(request):
    """Not implemented until the privacy issue lands (answers 501)."""
    return http.not_implemented("privacy_requests")


@functions_framework.cloud_event
def run_privacy_job(event):
    """Privacy jobs arrive here; ignored until the privacy issue lands."""
    log_events.event_received("run_privacy_job", dict(event.get_attributes()))
    message = events.pubsub_message(event.get_data() or {})
    log_events.scheduled_job_received("privacy", message.message_id)
