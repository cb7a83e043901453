"""The local Cloud Scheduler: publishes infra/schedules.json's messages on their crons.

Production Cloud Scheduler jobs are created by the deploy step from the same file, with the
same topic and the same JSON body, so the retention function sees the same messages here
and there. ``--fire NAME`` publishes one job's message now (operators and tests).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim

from localcloud import config


def job_by_name(name: str) -> dict[str, Any]:
    for job in config.schedule_definition()["jobs"]:
        if job["name"] == name:
            return job
    raise KeyError(f"no scheduled job named {name!r} in infra/schedules.json")


def message_body(job: dict[str, Any]) -> bytes:
    """The exact bytes Cloud Scheduler sends: the job's ``data`` as compact JSON."""
    return json.dumps(job["data"], separators=(",", ":"), sort_keys=True).encode()


def publish(publisher: Any, project: str, job: dict[str, Any]) -> str:
    """Publish one job's message; return the Pub/Sub message id."""
    topic = publisher.topic_path(project, job["topic"])
    future = publisher.publish(topic, message_body(job), scheduler_job=job["name"])
    return future.result(timeout=30)


def next_runs(jobs: list[dict[str, Any]], after: datetime) -> list[tuple[datetime, dict[str, Any]]]:
    """Each job's next fire time strictly after ``after`` (UTC), soonest first."""
    runs = [(next(CronSim(job["schedule"], after)), job) for job in jobs]
    return sorted(runs, key=lambda run: run[0])


def run_forever(publisher: Any, project: str,
                now: Callable[[], datetime] = lambda: datetime.now(UTC),
                sleep: Callable[[float], None] = time.sleep) -> None:
    jobs = config.schedule_definition()["jobs"]
    cursor = now().replace(second=0, microsecond=0)
    while True:
        when, _ = next_runs(jobs, cursor)[0]
        sleep(max(0.0, (when - now()).total_seconds()))
        for due, job in next_runs(jobs, cursor):
            if due == when:
                message_id = publish(publisher, project, job)
                print(json.dumps({"severity": "INFO", "message": "scheduled job published",
                                  "job": job["name"], "message_id": message_id}), flush=True)
        cursor = when + timedelta(seconds=0)


def main() -> None:
    from google.cloud import pubsub_v1

    parser = argparse.ArgumentParser(prog="python -m localcloud.scheduler")
    parser.add_argument("--project", default=config.DEFAULT_PROJECT)
    parser.add_argument("--fire", help="publish this job's message once and exit")
    args = parser.parse_args()
    publisher = pubsub_v1.PublisherClient()
    if args.fire:
        print(publish(publisher, args.project, job_by_name(args.fire)))
        return
    run_forever(publisher, args.project)


if __name__ == "__main__":
    main()
