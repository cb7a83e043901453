"""``resume_erasures``: erasures (and exports) that did not finish are queued again.

An erasure runs as a ``privacy-jobs`` message (:mod:`pacs.privacy.erasure`); Pub/Sub redelivers a
failed one for a while, but a lost message, or a job that failed past its retries, would
leave the request ``received`` or ``in_progress`` and the user's data half erased. This job
calls :func:`pacs.privacy.jobs.resume_stalled`, which queues again every export or erasure
request that has not moved for ``erasure_stale_minutes``; the erasure itself is idempotent
and resumable, so a request queued twice (overlapping runs) is erased once.
"""

from __future__ import annotations

from datetime import timedelta

from pacs.retention.context import JobContext


def resume_erasures(ctx: JobContext) -> None:
    from pacs.privacy import jobs

    older_than = timedelta(minutes=ctx.settings.erasure_stale_minutes)
    ctx.changed("requests_requeued", jobs.resume_stalled(ctx.clients, ctx.now, older_than))
