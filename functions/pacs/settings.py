"""Settings, read once from the environment.

Every tunable of the system lives here: bucket names, caps, quotas, retention periods.
Nothing else in the package reads ``os.environ`` (the production guard in ``guard`` is the
one exception, since it must run before settings are trusted).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3
MIB = 1024**2
# The key of every keyed id, log id, receipt, header seal and share view string. Deployed
# functions get it from Secret Manager (deploy/plan.py, secret ``pacs-hash-key``).
HASH_KEY_SETTING = "PACS_HASH_KEY"
HASH_KEY_MIN_BYTES = 32


class MissingSecret(RuntimeError):
    """Deployed without a secret setting, or with one too short to be a key."""


def project_of(env: Mapping[str, str]) -> str:
    """The project id the environment names ('' when none)."""
    return env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or ""


def is_deployed(env: Mapping[str, str], project: str | None = None) -> bool:
    """Whether this runs deployed: ``K_SERVICE`` is set (Cloud Functions 2nd gen, Cloud Run)
    or the project id does not start with ``demo-`` (emulator-only projects). The one
    decision, used by :mod:`pacs.guard` too; ``project`` defaults to the environment's."""
    project = project_of(env) if project is None else project
    return bool(env.get("K_SERVICE")) or not project.startswith("demo-")


def hash_key_from_env(env: Mapping[str, str], project: str | None = None) -> bytes:
    """``PACS_HASH_KEY`` as bytes. Deployed it must be set and at least
    :data:`HASH_KEY_MIN_BYTES` long, else :class:`MissingSecret` (never a fallback: a
    public key would let anyone compute keyed ids and forge share views). Emulator
    projects fall back to the development key ``local-only-key-{project}``."""
    project = project_of(env) if project is None else project
    key = (env.get(HASH_KEY_SETTING) or "").encode()
    if not is_deployed(env, project):
        return key or f"local-only-key-{project}".encode()
    if not key:
        raise MissingSecret(f"the setting {HASH_KEY_SETTING} is missing: deployed functions "
                            "read it from Secret Manager (secret pacs-hash-key, at least "
                            f"{HASH_KEY_MIN_BYTES} bytes)")
    if len(key) < HASH_KEY_MIN_BYTES:
        raise MissingSecret(f"the setting {HASH_KEY_SETTING} is {len(key)} bytes long; a "
                            f"deployed function needs at least {HASH_KEY_MIN_BYTES} bytes "
                            "(Secret Manager secret pacs-hash-key)")
    return key


# The privacy policy's version is its "Effective date" line (one source): the deploy plan
# sets PACS_POLICY_VERSION from it, the web client reads it at build time; local runs read
# the file itself (PACS_POLICY_FILE, else the repository's ../shared/privacy-policy.txt).
POLICY_VERSION_SETTING = "PACS_POLICY_VERSION"
POLICY_FILE = Path(__file__).resolve().parents[3] / "shared" / "privacy-policy.txt"
_EFFECTIVE_DATE = re.compile(r"^Effective date:\s*(\d{4}-\d{2}-\d{2})\s*$", re.M)


def policy_version_of(text: str) -> str:
    """The policy's version: the date of its ``Effective date: YYYY-MM-DD`` line."""
    match = _EFFECTIVE_DATE.search(text)
    if not match:
        raise ValueError("the privacy policy has no 'Effective date: YYYY-MM-DD' line")
    return match.group(1)


def policy_version_from_env(env: Mapping[str, str]) -> str:
    """``PACS_POLICY_VERSION``, else the effective date of the policy file (local runs; a
    staged function has no ../shared). Neither: :class:`MissingSecret`, naming the setting."""
    value = env.get(POLICY_VERSION_SETTING, "").strip()
    if value:
        return value
    path = Path(env.get("PACS_POLICY_FILE") or POLICY_FILE)
    if not path.is_file():
        raise MissingSecret(f"the setting {POLICY_VERSION_SETTING} is missing (and no policy "
                            f"file at {path}): the deploy plan sets it from the privacy "
                            "policy's effective date")
    return policy_version_of(path.read_text())


def hosting_origins_from_env(env: Mapping[str, str], project: str) -> tuple[str, ...]:
    """The Hosting origins (see ``Settings.hosting_origins``), without trailing slashes.
    ``PACS_HOSTING_ORIGINS`` separates them by spaces or commas (the deploy step uses spaces:
    gcloud's ``--set-env-vars`` splits on commas)."""
    listed = [o.rstrip("/") for o in re.split(r"[,\s]+", env.get("PACS_HOSTING_ORIGINS", ""))]
    if not any(listed):
        listed = [env.get("PACS_VIEWER_ORIGIN", "").rstrip("/"), f"https://{project}.web.app",
                  f"https://{project}.firebaseapp.com"]
    return tuple(dict.fromkeys(o for o in listed if o))


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return default if raw in (None, "") else int(raw)


@dataclass(frozen=True)
class Settings:
    """All configuration of the PACS functions.

    Attributes
    ----------
    project_id : str
        Google Cloud project id (``demo-*`` locally).
    uploads_bucket, instances_bucket, derived_bucket : str
        The three buckets: raw uploads, canonical DICOM, derived previews and exports.
    hash_key : bytes
        Secret key for keyed hashes of identifiers (document ids, object names, log ids),
        header seals and share view strings (:func:`hash_key_from_env`: deployed, at least
        32 bytes or :class:`MissingSecret`).
    """

    project_id: str
    uploads_bucket: str
    instances_bucket: str
    derived_bucket: str
    hash_key: bytes
    region: str = "europe-west1"
    # Upload limits.
    max_upload_bytes: int = 2 * GIB
    user_quota_bytes: int = 50 * GIB
    # Started in the last hour, per user: files (upload records) and bytes; files per
    # create_upload request (a folder is started in batches of this many).
    uploads_per_hour: int = 20_000
    upload_bytes_per_hour: int = 20 * GIB
    upload_batch_max: int = 250
    # Archive safety caps.
    zip_max_members: int = 20_000
    zip_max_member_bytes: int = 1 * GIB
    # Bytes of archive members spooled at once (in /tmp, which is memory on Cloud
    # Functions): with the function's 4 GiB, one 1 GiB member plus the rest of the process
    # always fit. A member larger than this runs alone.
    ingest_spool_bytes: int = 1536 * MIB
    zip_max_total_bytes: int = 8 * GIB
    zip_max_ratio: int = 200
    # DICOM header parsing bounds.
    header_max_bytes: int = 64 * MIB
    inflate_max_bytes: int = 256 * MIB
    # Event processing.
    event_deadline_seconds: int = 540
    event_max_age_seconds: int = 24 * 3600
    # Links and shares.
    link_ttl_seconds: int = 15 * 60
    link_ttl_cap_seconds: int = 60 * 60
    share_ttl_seconds: int = 24 * 3600
    share_ttl_cap_seconds: int = 7 * 24 * 3600
    share_max_views_cap: int = 10_000
    # A de-identified share's copy: instances copied per run (more take further runs).
    share_copy_run_instances: int = 300
    # Signed URLs: where they point (the emulator locally), pages of one series' instance
    # URLs, parallel signatures, the viewer origin of share links, trusted proxy hops in
    # X-Forwarded-For (for the client IP of access records).
    signed_url_endpoint: str = "https://storage.googleapis.com"
    series_page_size: int = 500
    signing_workers: int = 16
    viewer_origin: str = ""
    # Origins whose pages may call the DICOMweb function cross-origin (CORS): the Hosting
    # origins, PACS_HOSTING_ORIGINS (space- or comma-separated), else the viewer origin and the
    # project's two Firebase Hosting domains.
    hosting_origins: tuple[str, ...] = ()
    forwarded_hops: int = 1
    # Retention (docs/retention.md: each period beside the policy sentence it implements).
    access_log_retention_days: int = 90
    export_link_seconds: int = 24 * 3600
    pending_upload_expiry_hours: int = 24
    reconcile_grace_hours: int = 6
    raw_upload_keep_hours: int = 1
    stalled_upload_expiry_hours: int = 48
    run_record_retention_days: int = 90
    erasure_stale_minutes: int = 30
    deletion_stale_minutes: int = 10
    unconfirmed_account_days: int = 7
    privacy_at_risk_days: int = 5
    # An export writes what fits in this many seconds per run, then queues the next run.
    export_run_seconds: int = 420
    # The Firebase web API key (public configuration): Identity Toolkit calls made for the
    # user, such as the sign-in email's verify-and-change link.
    firebase_api_key: str = ""
    usage_min_users: int = 5
    retention_page_size: int = 500
    retention_topic: str = "retention-jobs"
    recent_signin_seconds: int = 300
    privacy_response_days: int = 30
    policy_version: str = ""  # the policy's effective date (policy_version_from_env)
    # Erasure (docs/privacy.md): residual copies (backups, PITR, soft-deleted objects) expire
    # within residual_copy_days, logs within log_retention_days (deploy/plan.py sets both);
    # the pseudonymous erasure receipt is kept erasure_receipt_retention_days.
    residual_copy_days: int = 7
    log_retention_days: int = 30
    erasure_receipt_retention_days: int = 3 * 365
    privacy_job_max_attempts: int = 5
    signing_key_file: str = ""
    signing_service_account: str = ""
    ingest_topic: str = "ingest-batches"
    privacy_topic: str = "privacy-jobs"
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (``os.environ`` by default).

        Raises :class:`MissingSecret` when deployed without a usable ``PACS_HASH_KEY``."""
        env = os.environ if env is None else env
        project = project_of(env) or "demo-pacs"
        return cls(
            project_id=project,
            uploads_bucket=env.get("PACS_UPLOADS_BUCKET", f"{project}-uploads"),
            instances_bucket=env.get("PACS_INSTANCES_BUCKET", f"{project}-instances"),
            derived_bucket=env.get("PACS_DERIVED_BUCKET", f"{project}-derived"),
            hash_key=hash_key_from_env(env, project),
            region=env.get("PACS_REGION", "europe-west1"),
            max_upload_bytes=_int(env, "PACS_MAX_UPLOAD_BYTES", 2 * GIB),
            user_quota_bytes=_int(env, "PACS_USER_QUOTA_BYTES", 50 * GIB),
            uploads_per_hour=_int(env, "PACS_UPLOADS_PER_HOUR", 20_000),
            upload_bytes_per_hour=_int(env, "PACS_UPLOAD_BYTES_PER_HOUR", 20 * GIB),
            upload_batch_max=min(max(1, _int(env, "PACS_UPLOAD_BATCH_MAX", 250)), 400),
            zip_max_members=_int(env, "PACS_ZIP_MAX_MEMBERS", 20_000),
            zip_max_member_bytes=_int(env, "PACS_ZIP_MAX_MEMBER_BYTES", 1 * GIB),
            ingest_spool_bytes=max(1, _int(env, "PACS_INGEST_SPOOL_BYTES", 1536 * MIB)),
            zip_max_total_bytes=_int(env, "PACS_ZIP_MAX_TOTAL_BYTES", 8 * GIB),
            zip_max_ratio=_int(env, "PACS_ZIP_MAX_RATIO", 200),
            header_max_bytes=_int(env, "PACS_HEADER_MAX_BYTES", 64 * MIB),
            inflate_max_bytes=_int(env, "PACS_INFLATE_MAX_BYTES", 256 * MIB),
            event_deadline_seconds=_int(env, "PACS_EVENT_DEADLINE_SECONDS", 540),
            event_max_age_seconds=_int(env, "PACS_EVENT_MAX_AGE_SECONDS", 24 * 3600),
            link_ttl_seconds=min(
                _int(env, "PACS_LINK_TTL_SECONDS", 15 * 60), 60 * 60
            ),
            share_ttl_seconds=_int(env, "PACS_SHARE_TTL_SECONDS", 24 * 3600),
            share_copy_run_instances=max(1, _int(env, "PACS_SHARE_COPY_RUN_INSTANCES", 300)),
            access_log_retention_days=_int(env, "PACS_ACCESS_LOG_RETENTION_DAYS", 90),
            export_link_seconds=_int(env, "PACS_EXPORT_LINK_SECONDS", 24 * 3600),
            pending_upload_expiry_hours=_int(env, "PACS_PENDING_UPLOAD_EXPIRY_HOURS", 24),
            reconcile_grace_hours=_int(env, "PACS_RECONCILE_GRACE_HOURS", 6),
            raw_upload_keep_hours=_int(env, "PACS_RAW_UPLOAD_KEEP_HOURS", 1),
            stalled_upload_expiry_hours=_int(env, "PACS_STALLED_UPLOAD_EXPIRY_HOURS", 48),
            run_record_retention_days=_int(env, "PACS_RUN_RECORD_RETENTION_DAYS", 90),
            erasure_stale_minutes=_int(env, "PACS_ERASURE_STALE_MINUTES", 30),
            deletion_stale_minutes=_int(env, "PACS_DELETION_STALE_MINUTES", 10),
            unconfirmed_account_days=max(1, _int(env, "PACS_UNCONFIRMED_ACCOUNT_DAYS", 7)),
            privacy_at_risk_days=max(0, _int(env, "PACS_PRIVACY_AT_RISK_DAYS", 5)),
            export_run_seconds=max(0, _int(env, "PACS_EXPORT_RUN_SECONDS", 420)),
            firebase_api_key=env.get("PACS_FIREBASE_API_KEY", ""),
            usage_min_users=max(2, _int(env, "PACS_USAGE_MIN_USERS", 5)),
            retention_page_size=max(1, _int(env, "PACS_RETENTION_PAGE_SIZE", 500)),
            retention_topic=env.get("PACS_RETENTION_TOPIC", "retention-jobs"),
            recent_signin_seconds=_int(env, "PACS_RECENT_SIGNIN_SECONDS", 300),
            policy_version=policy_version_from_env(env),
            privacy_response_days=_int(env, "PACS_PRIVACY_RESPONSE_DAYS", 30),
            residual_copy_days=_int(env, "PACS_RESIDUAL_COPY_DAYS", 7),
            log_retention_days=_int(env, "PACS_LOG_RETENTION_DAYS", 30),
            erasure_receipt_retention_days=_int(env, "PACS_ERASURE_RECEIPT_RETENTION_DAYS",
                                                3 * 365),
            privacy_job_max_attempts=max(1, _int(env, "PACS_PRIVACY_JOB_MAX_ATTEMPTS", 5)),
            signing_key_file=env.get("PACS_SIGNING_KEY_FILE", ""),
            signing_service_account=env.get("PACS_SIGNING_SERVICE_ACCOUNT", ""),
            share_max_views_cap=_int(env, "PACS_SHARE_MAX_VIEWS_CAP", 10_000),
            signed_url_endpoint=(env.get("PACS_SIGNED_URL_ENDPOINT")
                                 or env.get("STORAGE_EMULATOR_HOST")
                                 or "https://storage.googleapis.com").rstrip("/"),
            series_page_size=max(1, _int(env, "PACS_SERIES_PAGE_SIZE", 500)),
            signing_workers=max(1, _int(env, "PACS_SIGNING_WORKERS", 16)),
            viewer_origin=(env.get("PACS_VIEWER_ORIGIN")
                           or f"https://{project}.web.app").rstrip("/"),
            hosting_origins=hosting_origins_from_env(env, project),
            forwarded_hops=max(0, _int(env, "PACS_FORWARDED_HOPS", 1)),
            ingest_topic=env.get("PACS_INGEST_TOPIC", "ingest-batches"),
            privacy_topic=env.get("PACS_PRIVACY_TOPIC", "privacy-jobs"),
        )

    def bucket_role(self, bucket: str) -> str | None:
        """Return ``uploads``, ``instances`` or ``derived`` for one of our buckets."""
        return {
            self.uploads_bucket: "uploads",
            self.instances_bucket: "instances",
            self.derived_bucket: "derived",
        }.get(bucket)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings.from_env()
