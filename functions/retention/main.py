"""Retention jobs, sent by Cloud Scheduler through Pub/Sub (``infra/schedules.json``)."""

import functions_framework
from pacs import events, guard, http, log_events
from pacs.clients import default_clients
from pacs.retention import runner

guard.assert_safe_environment()
log_events.route_warnings()


@functions_framework.cloud_event
def run_retention_job(event):
    """``{"job": "<name>"}`` → run that job (``pacs.retention.jobs.JOBS``) and record the run.

    An unknown job or an unreadable message is logged and acknowledged (retrying cannot
    help); a failure of the job itself is in its run record, and the next scheduled run
    tries again. Only a run that could not even be recorded is retried by redelivery.
    """
    log_events.event_received("run_retention_job", dict(event.get_attributes()))
    message = events.pubsub_message(event.get_data() or {})
    try:
        body = message.json()
    except ValueError:
        body = {}
    job = runner.job_name(body)
    log_events.scheduled_job_received(job, message.message_id)
    options = {k: v for k, v in body.items() if k != "job"} if isinstance(body, dict) else {}
    http.run_event("run_retention_job", lambda: runner.run(
        default_clients(), job, message_id=message.message_id, options=options,
        continuation=True, continuation_of=message.attributes.get("continuation_of")),
        message_id=message.message_id)
