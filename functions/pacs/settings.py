"""Settings, read once from the environment.

Every tunable of the system lives here: bucket names, caps, quotas, retention periods.
Nothing else in the package reads ``os.environ`` (the production guard in ``guard`` is the
one exception, since it must run before settings are trusted).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

GIB = 1024**3
MIB = 1024**2


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
        Secret key for keyed hashes of identifiers (document ids, object names, log ids).
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
    uploads_per_hour: int = 600
    # Archive safety caps.
    zip_max_members: int = 20_000
    zip_max_member_bytes: int = 1 * GIB
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
    # Retention (see README "Retention").
    access_log_retention_days: int = 90
    export_link_seconds: int = 24 * 3600
    pending_upload_expiry_hours: int = 24
    reconcile_grace_hours: int = 6
    recent_signin_seconds: int = 300
    privacy_response_days: int = 30
    policy_version: str = "2026-02-08"
    signing_key_file: str = ""
    signing_service_account: str = ""
    ingest_topic: str = "ingest-batches"
    privacy_topic: str = "privacy-jobs"
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (``os.environ`` by default)."""
        env = os.environ if env is None else env
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or "demo-pacs"
        return cls(
            project_id=project,
            uploads_bucket=env.get("PACS_UPLOADS_BUCKET", f"{project}-uploads"),
            instances_bucket=env.get("PACS_INSTANCES_BUCKET", f"{project}-instances"),
            derived_bucket=env.get("PACS_DERIVED_BUCKET", f"{project}-derived"),
            hash_key=env.get("PACS_HASH_KEY", f"local-only-key-{project}").encode(),
            region=env.get("PACS_REGION", "europe-west1"),
            max_upload_bytes=_int(env, "PACS_MAX_UPLOAD_BYTES", 2 * GIB),
            user_quota_bytes=_int(env, "PACS_USER_QUOTA_BYTES", 50 * GIB),
            uploads_per_hour=_int(env, "PACS_UPLOADS_PER_HOUR", 600),
            zip_max_members=_int(env, "PACS_ZIP_MAX_MEMBERS", 20_000),
            zip_max_member_bytes=_int(env, "PACS_ZIP_MAX_MEMBER_BYTES", 1 * GIB),
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
            access_log_retention_days=_int(env, "PACS_ACCESS_LOG_RETENTION_DAYS", 90),
            export_link_seconds=_int(env, "PACS_EXPORT_LINK_SECONDS", 24 * 3600),
            pending_upload_expiry_hours=_int(env, "PACS_PENDING_UPLOAD_EXPIRY_HOURS", 24),
            reconcile_grace_hours=_int(env, "PACS_RECONCILE_GRACE_HOURS", 6),
            recent_signin_seconds=_int(env, "PACS_RECENT_SIGNIN_SECONDS", 300),
            policy_version=env.get("PACS_POLICY_VERSION", "2026-02-08"),
            signing_key_file=env.get("PACS_SIGNING_KEY_FILE", ""),
            signing_service_account=env.get("PACS_SIGNING_SERVICE_ACCOUNT", ""),
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
