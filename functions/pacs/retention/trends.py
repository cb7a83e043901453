"""``usage_trends``: the policy's "anonymized usage trends, aggregated statistics".

Once a day the job counts the previous UTC day (or the ``day`` of the message) into
``usage_daily/{YYYY-MM-DD}``:

- ``uploads`` — uploads started that day, by status;
- ``instances_stored`` — DICOM instances those uploads stored;
- ``rejections`` — files of those uploads refused, by reason code;
- ``studies_by_modality`` — studies first indexed that day, by modality.

What makes the figures anonymous:

- no uid, name, id or free text is written: bucket labels come from fixed vocabularies
  (statuses, reason codes) or are normalized (modality: 1-16 of ``A-Z0-9_``, else
  ``invalid``);
- **suppression**: a bucket whose count comes from fewer than ``usage_min_users`` (5)
  distinct users is not published on its own. Such buckets are pooled into ``other`` when the
  pool covers at least 5 users, else dropped; the metric's ``total`` is then withheld too,
  so no small bucket can be recovered by subtraction (:func:`publishable`);
- users whose processing is restricted (``users/{uid}.restricted``) are not counted at all;
- consent-based metrics (``basis: consent``) count only users with current analytics
  consent (:func:`pacs.privacy.consent.state`: granted under the current policy version).
  Service metrics (``basis: legitimate_interest``: uploads, instances, rejections — the
  service's own health and security) count every unrestricted user. Which metric is which
  is :data:`METRICS`.

Memory stays bounded: documents are read a page at a time, and each bucket keeps at most
``usage_min_users`` user ids (enough to decide suppression), never the day's whole set.
Rerunning a day rewrites its document (idempotent).
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pacs import results
from pacs.errors import BadRequest
from pacs.ingest import uploads
from pacs.paging import query_pages
from pacs.retention.context import JobContext

DAILY = "usage_daily"
CONSENT, LEGITIMATE_INTEREST = "consent", "legitimate_interest"
OTHER = "other"
USER_CACHE = 50_000
_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
KNOWN_STATUSES = (uploads.PENDING, uploads.PROCESSING, *uploads.FINAL_STATUSES)
REFUSED = (results.REJECTED, results.CONFLICT)


@dataclass(frozen=True)
class Metric:
    """One published figure: its legal basis, what it counts, and by what."""

    basis: str
    unit: str
    by: str


METRICS: dict[str, Metric] = {
    "uploads": Metric(LEGITIMATE_INTEREST, "uploads", "status"),
    "instances_stored": Metric(LEGITIMATE_INTEREST, "instances", "all"),
    "rejections": Metric(LEGITIMATE_INTEREST, "files", "reason"),
    "studies_by_modality": Metric(CONSENT, "studies", "modality"),
}


# --- Suppression (pure) -------------------------------------------------------------------

@dataclass
class Tally:
    """Counts by bucket, with up to ``k`` of the distinct users behind each.

    A bucket with fewer than ``k`` users keeps all of them (so pools of small buckets are
    counted exactly); one with ``k`` or more keeps ``k`` (enough to know it is publishable).
    """

    k: int
    counts: Counter = field(default_factory=Counter)
    users: dict[str, set[str]] = field(default_factory=dict)
    all_users: set[str] = field(default_factory=set)
    total: int = 0

    def add(self, bucket: str, user: str, n: int = 1) -> None:
        if n <= 0:
            return
        self.counts[bucket] += n
        seen = self.users.setdefault(bucket, set())
        if len(seen) < self.k:
            seen.add(user)
        if len(self.all_users) < self.k:
            self.all_users.add(user)
        self.total += n


def publishable(tally: Tally) -> dict[str, Any]:
    """What of a tally may be published.

    Returns
    -------
    dict
        ``buckets`` (label → count, each from at least ``k`` users), ``other`` (the pooled
        count of the smaller buckets, present only when the pool covers ``k`` users),
        ``total`` (``None`` when the tally covers fewer than ``k`` users or a small bucket
        was dropped, since total minus the published buckets would reveal it) and
        ``suppressed`` (whether any bucket was pooled or dropped).
    """
    k = tally.k
    published = {b: c for b, c in tally.counts.items() if len(tally.users.get(b, ())) >= k}
    small = [b for b in tally.counts if b not in published]
    out: dict[str, Any] = {"buckets": dict(sorted(published.items()))}
    dropped = False
    if small:
        pool: set[str] = set().union(*(tally.users.get(b, set()) for b in small))
        if len(pool) >= k:
            out[OTHER] = sum(tally.counts[b] for b in small)
        else:
            dropped = True
    covered = len(tally.all_users) >= k
    out["total"] = tally.total if covered and not dropped else None
    out["suppressed"] = bool(small)
    return out


def normalize_modality(value: Any) -> str:
    """A modality label safe to publish: DICOM's code string shape, else ``invalid``."""
    text = value.strip().upper() if isinstance(value, str) else ""
    return text if _MODALITY.match(text) else "invalid"


def normalize_reason(value: Any) -> str:
    """A reason code of the fixed list (``pacs.results.MESSAGES``), else ``other_reason``."""
    return value if isinstance(value, str) and value in results.MESSAGES else "other_reason"


def normalize_status(value: Any) -> str:
    return value if value in KNOWN_STATUSES else "unknown"


def report_day(options: Any, now: datetime) -> date:
    """The day to count: ``options["day"]`` (``YYYY-MM-DD``, before today), else yesterday."""
    today = now.astimezone(UTC).date()
    raw = (options or {}).get("day")
    if raw is None:
        return today - timedelta(days=1)
    if not isinstance(raw, str) or not _DAY.match(raw):
        raise BadRequest("day must be YYYY-MM-DD", code="bad_day")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadRequest("day must be a calendar date", code="bad_day") from None
    if day >= today:
        raise BadRequest("only a finished day can be counted", code="day_not_over")
    return day


# --- Who counts ---------------------------------------------------------------------------

class Users:
    """Restriction and current analytics consent of users, read a page of users at a time
    and cached (bounded)."""

    def __init__(self, firestore: Any, policy_version: str, limit: int = USER_CACHE) -> None:
        self.firestore = firestore
        self.policy_version = policy_version
        self.limit = limit
        self.cache: OrderedDict[str, tuple[bool, bool]] = OrderedDict()

    def load(self, uids: set[str]) -> None:
        from pacs.privacy import consent, profile

        missing = [u for u in uids if u not in self.cache]
        if not missing:
            return
        refs = [profile.profile_ref(self.firestore, u) for u in missing]
        found = {}
        for snap in self.firestore.get_all(refs, field_paths=["consent", "restricted"]):
            found[snap.id] = snap.to_dict() if snap.exists else None
        for uid in missing:
            doc = found.get(uid)
            restricted = bool(doc and doc.get("restricted") is True)
            consented = bool(consent.state(doc, self.policy_version)["active"])
            self.cache[uid] = (restricted, consented)
            while len(self.cache) > self.limit:
                self.cache.popitem(last=False)

    def counts(self, uid: str, metric: str) -> bool:
        """Whether ``uid`` counts toward ``metric`` (after :meth:`load`)."""
        restricted, consented = self.cache.get(uid, (True, False))
        if restricted:
            return False
        return consented or METRICS[metric].basis != CONSENT


# --- The job ------------------------------------------------------------------------------

def day_query(firestore: Any, collection: str, fields: list[str], start: datetime,
              end: datetime) -> Any:
    """Documents of ``collection`` created in ``[start, end)``, in creation order."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(collection)
            .where(filter=FieldFilter("created_at", ">=", start))
            .where(filter=FieldFilter("created_at", "<", end))
            .order_by("created_at").select(fields + ["created_at"]))


def refused_files_query(firestore: Any, upload_id: str) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(uploads.UPLOADS).document(upload_id).collection("files")
            .where(filter=FieldFilter("status", "in", list(REFUSED))).select(["reason"]))


def _count_uploads(ctx: JobContext, tallies: dict[str, Tally], who: Users, start: datetime,
                   end: datetime) -> None:
    fs = ctx.firestore
    query = day_query(fs, uploads.UPLOADS, ["owner", "status", "counts"], start, end)
    for page in query_pages(query, ctx.page_size):
        ctx.count("uploads_read", len(page))
        docs = [(s.id, s.to_dict() or {}) for s in page]
        who.load({d["owner"] for _, d in docs if d.get("owner")})
        for upload_id, doc in docs:
            owner = doc.get("owner")
            if not owner:
                continue
            if who.counts(owner, "uploads"):
                tallies["uploads"].add(normalize_status(doc.get("status")), owner)
            counts = doc.get("counts") or {}
            if who.counts(owner, "instances_stored"):
                tallies["instances_stored"].add("all", owner, int(counts.get(results.STORED, 0)))
            refused = sum(int(counts.get(s, 0)) for s in REFUSED)
            if refused and who.counts(owner, "rejections"):
                for files in query_pages(refused_files_query(fs, upload_id), ctx.page_size):
                    ctx.count("files_read", len(files))
                    for snap in files:
                        reason = (snap.to_dict() or {}).get("reason")
                        tallies["rejections"].add(normalize_reason(reason), owner)


def _count_studies(ctx: JobContext, tallies: dict[str, Tally], who: Users, start: datetime,
                   end: datetime) -> None:
    query = day_query(ctx.firestore, "studies", ["owner", "modalities"], start, end)
    for page in query_pages(query, ctx.page_size):
        ctx.count("studies_read", len(page))
        docs = [s.to_dict() or {} for s in page]
        who.load({d["owner"] for d in docs if d.get("owner")})
        for doc in docs:
            owner = doc.get("owner")
            if not owner or not who.counts(owner, "studies_by_modality"):
                continue
            modalities = {normalize_modality(m) for m in doc.get("modalities") or []}
            for modality in sorted(modalities or {"unknown"}):
                tallies["studies_by_modality"].add(modality, owner)


def usage_trends(ctx: JobContext) -> None:
    settings = ctx.settings
    day = report_day(ctx.options, ctx.now)
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    k = settings.usage_min_users
    tallies = {name: Tally(k) for name in METRICS}
    who = Users(ctx.firestore, settings.policy_version)
    _count_uploads(ctx, tallies, who, start, end)
    _count_studies(ctx, tallies, who, start, end)
    metrics = {}
    for name, metric in METRICS.items():
        figure = publishable(tallies[name])
        metrics[name] = {"basis": metric.basis, "unit": metric.unit, "by": metric.by, **figure}
        if figure["suppressed"]:
            ctx.count("metrics_with_suppression")
    ctx.firestore.collection(DAILY).document(day.isoformat()).set({
        "date": day.isoformat(), "generated_at": ctx.now, "min_users": k,
        "policy_version": settings.policy_version, "metrics": metrics})
    ctx.changed("days_written")


def queries(firestore: Any, now: datetime) -> list[Any]:
    """The job's queries (for the index check in the tests)."""
    return [day_query(firestore, uploads.UPLOADS, ["owner"], now, now).limit(1),
            day_query(firestore, "studies", ["owner"], now, now).limit(1),
            refused_files_query(firestore, "u").limit(1)]
