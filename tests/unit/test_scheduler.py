"""The local scheduler reads the one schedule definition and computes cron times."""

from datetime import UTC, datetime

from localcloud import config, scheduler


def test_every_job_has_a_topic_a_function_listens_on():
    topics = {f["trigger"].get("topic") for f in config.function_table()}
    for job in config.schedule_definition()["jobs"]:
        assert job["topic"] in topics, job["name"]


def test_next_runs_follow_the_crons():
    jobs = [{"name": "a", "schedule": "*/15 * * * *", "topic": "t", "data": {}},
            {"name": "b", "schedule": "30 2 * * *", "topic": "t", "data": {}}]
    after = datetime(2026, 11, 25, 2, 20, tzinfo=UTC)
    runs = scheduler.next_runs(jobs, after)
    assert [(when.hour, when.minute, job["name"]) for when, job in runs] == [(2, 30, "a"), (2, 30, "b")]
    # Strictly after: a run at the cursor itself is not repeated.
    again = scheduler.next_runs(jobs, runs[0][0])
    assert again[0][0] > runs[0][0]


def test_message_body_is_the_jobs_data_as_json():
    job = scheduler.job_by_name("reconcile")
    assert scheduler.message_body(job) == b'{"job":"reconcile"}'
