"""Retention: scheduled jobs that make the privacy policy's retention promises true.

Cloud Scheduler publishes ``{"job": "<name>"}`` on each job's cron (``infra/schedules.json``)
to the ``retention-jobs`` topic; ``run_retention_job`` hands the name to
:func:`pacs.retention.runner.run`, which looks the job up in :data:`pacs.retention.jobs.JOBS`,
takes the job's lease, runs it in bounded pages within a time budget and writes a run record
(``retention_runs/{id}``). See ``docs/retention.md`` for each job, its period and the policy
sentence it implements.

Modules: ``context`` (what a job gets), ``runner`` (leases, run records, continuation),
``jobs`` (the registry), and one module per job: ``links``, ``logs``, ``uploads``,
``reconcile``, ``erasures``, ``deletions``, ``trends``.
"""
