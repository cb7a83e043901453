"""The registry of retention jobs: the ``job`` of a scheduled message → what runs.

``infra/schedules.json`` sends each name on its cron; a name not here is logged and ignored.
"""

from __future__ import annotations

from pacs.retention.accounts import purge_unconfirmed
from pacs.retention.context import Job
from pacs.retention.deadlines import watch_deadlines
from pacs.retention.deletions import resume_deletions
from pacs.retention.erasures import resume_erasures
from pacs.retention.links import expire_links
from pacs.retention.logs import purge_logs
from pacs.retention.metadata_backfill import backfill_series_metadata
from pacs.retention.reconcile import reconcile
from pacs.retention.search_refresh import refresh_search_keys
from pacs.retention.trends import usage_trends
from pacs.retention.uploads import clean_uploads

JOBS: dict[str, Job] = {job.name: job for job in (
    Job("expire_links", expire_links,
        "delete shares past their expiry, keeping an access record of each"),
    Job("purge_logs", purge_logs,
        "delete access records, expired export archives, old run records and erasure "
        "receipts past their retention"),
    Job("clean_uploads", clean_uploads,
        "expire pending uploads, finish stalled ones, delete raw objects of finished uploads"),
    Job("reconcile", reconcile,
        "repair or remove instance objects without documents, documents without objects, "
        "previews without series"),
    Job("refresh_search_keys", refresh_search_keys,
        "bring studies indexed under an older search-key layout to the current one "
        "(one state read once done)"),
    Job("backfill_series_metadata", backfill_series_metadata,
        "build the WADO-RS metadata and frame index of series settled without one "
        "(one state read once done)"),
    Job("resume_erasures", resume_erasures,
        "queue again erasure and export requests that stopped moving"),
    Job("resume_deletions", resume_deletions,
        "finish study deletions that waited for an upload or stopped part way"),
    Job("purge_unconfirmed", purge_unconfirmed,
        "delete sign-in accounts idle for days that never confirmed 18+ and hold no data"),
    Job("watch_deadlines", watch_deadlines,
        "mark data-subject requests due within days as at risk; log an alert per overdue one"),
    Job("usage_trends", usage_trends,
        "count yesterday's anonymous usage figures, small buckets suppressed"),
)}
