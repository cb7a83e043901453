"""The deploy plan: every command that sets the project up, in order, as data (``Step``)
and as the bash script the dry run prints and ``--apply`` runs.

Values only known at apply time (the project number, the Eventarc trigger a function
deploy created, that trigger's Pub/Sub subscription) are captured into shell variables
by lookup commands in the script and used as ``${NAME}`` further down; the dry run prints
them like that. ``Plan.placeholders`` holds a well-formed example of each, for checks
that run the printed commands.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy import iam, privacy
from deploy.requirements import FUNCTIONS_DIR, ROOT

RUNTIME = "python312"
BUCKET_ROLES = ("uploads", "instances", "derived")
HASH_KEY_VERSION = "1"  # pinned: a new version would change every keyed id
FIREBASE_CLI = "node_modules/.bin/firebase"
FIREBASE_ONLY = "hosting,firestore:rules,firestore:indexes,storage"

# Redelivery of events: Eventarc's subscription retries with backoff, then dead-letters.
# The maximum event age (PACS_EVENT_MAX_AGE_SECONDS, 24 h) is checked in code.
DEAD_LETTER_TOPIC = "pacs-dead-letter"
DEAD_LETTER_HOLD = "pacs-dead-letter-hold"  # keeps dead letters (ids only) for inspection
DEAD_LETTER_RETENTION = "7d"
MAX_DELIVERY_ATTEMPTS = 20
MIN_RETRY_DELAY = "10s"
MAX_RETRY_DELAY = "600s"


def runtime_settings() -> Any:
    """The functions' default settings (functions/pacs/settings.py, loaded by path: it
    imports nothing of the package), so retention numbers have one source."""
    name = "_pacs_settings_for_deploy"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FUNCTIONS_DIR / "pacs" / "settings.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].Settings.from_env({"GOOGLE_CLOUD_PROJECT": "demo-deploy"})


_SETTINGS = runtime_settings()


def policy_version() -> str:
    """The privacy policy's version for the functions (``PACS_POLICY_VERSION``): the
    effective date of the policy file the web client is built from (``PACS_POLICY_FILE``,
    else ``../shared/privacy-policy.txt``), parsed as the functions parse it."""
    module = sys.modules["_pacs_settings_for_deploy"]
    path = Path(os.environ.get("PACS_POLICY_FILE") or module.POLICY_FILE)
    return module.policy_version_of(path.read_text())
# How long anything erased can survive in a residual copy, in days: the erasure receipt
# states it (settings.residual_copy_days). GCS soft delete, Firestore PITR (fixed at 7
# days when enabled) and Firestore backups all expire within it; object versioning is off.
RESIDUAL_COPY_DAYS = int(getattr(_SETTINGS, "residual_copy_days", 7))
SOFT_DELETE = f"{RESIDUAL_COPY_DAYS}d"
FIRESTORE_PITR_DAYS = 7
BACKUP_RETENTION = f"{RESIDUAL_COPY_DAYS}d"
# Cloud Logging keeps pseudonymous ids (keyed hashes, uids) this long (settings.log_retention_days).
LOG_RETENTION_DAYS = int(getattr(_SETTINGS, "log_retention_days", 30))
# Uploads bucket backstop: lifecycle deletes upload objects a day after the retention job
# would have expired them (pending / stalled upload expiry).
UPLOAD_OBJECT_MAX_AGE_DAYS = math.ceil(max(
    _SETTINGS.pending_upload_expiry_hours,
    int(getattr(_SETTINGS, "stalled_upload_expiry_hours", 0))) / 24) + 1
# Event functions run up to the settings' event deadline (540 s, the 2nd-gen event maximum).
EVENT_TIMEOUT_SECONDS = int(_SETTINGS.event_deadline_seconds)

# The APIs enabled: exactly the services of infra/processors.json, each with what it holds
# of personal data (the web client's Processors page is built from the same file).
APIS = privacy.enabled_apis()

# Memory, timeout (seconds) and instance cap per function.
HTTP_TIMEOUT_SECONDS = 60
TRANSFER_TIMEOUT_SECONDS = 3600  # the most Cloud Functions (2nd gen) allows an HTTP function
SIZING: dict[str, tuple[str, int, int]] = {
    "create-upload": ("512Mi", HTTP_TIMEOUT_SECONDS, 20),
    # /tmp is memory: a spooled archive member (PACS_ZIP_MAX_MEMBER_BYTES, 1 GiB) lives there.
    "on-upload-finalized": ("4Gi", EVENT_TIMEOUT_SECONDS, 10),
    "continue-upload": ("4Gi", EVENT_TIMEOUT_SECONDS, 10),
    "on-instance-finalized": ("1Gi", EVENT_TIMEOUT_SECONDS, 20),
    "settle-series": ("2Gi", EVENT_TIMEOUT_SECONDS, 10),
    "studies": ("512Mi", HTTP_TIMEOUT_SECONDS, 20),
    "sign-link": ("512Mi", 120, 20),
    "privacy-requests": ("512Mi", HTTP_TIMEOUT_SECONDS, 5),
    "run-privacy-job": ("2Gi", EVENT_TIMEOUT_SECONDS, 5),
    "run-retention-job": ("1Gi", EVENT_TIMEOUT_SECONDS, 2),
    # Searches hold at most one page of study documents; retrieves stream in 1 MiB chunks.
    # Study retrieves and ZIPs stream for as long as the transfer takes, through the
    # function's own URL (Hosting cuts at 60 s): docs/dicomweb.md.
    "dicomweb": ("512Mi", TRANSFER_TIMEOUT_SECONDS, 20),
}

STORAGE_EVENT_TYPES = {"finalized": "google.cloud.storage.object.v1.finalized"}

PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
VAR_RE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class PlanError(ValueError):
    """The plan cannot be made for these arguments (bad project, region mismatch...)."""


@dataclass(frozen=True)
class Step:
    """One command of the plan.

    Attributes
    ----------
    section : str
        Heading the command is printed under.
    argv : tuple of str
        The command (``${VAR}`` tokens are filled in by the shell at apply time).
    comment : str
        Printed above the command.
    capture : str
        When set, the command's output is stored in this shell variable.
    probe : tuple of str
        When set, ``argv`` runs only if the probe fails (the resource is missing) ...
    update : tuple of str
        ... and this runs instead when the probe succeeds (create or update).
    probe_var : str
        When set, ``argv`` runs only if this captured variable is empty, else ``update``.
    secret_stdin : bool
        Feed a fresh random key on stdin (``--data-file=-``).
    retry : bool
        Retry a few times (IAM bindings on a just-created account may race its creation).
    """

    section: str
    argv: tuple[str, ...]
    comment: str = ""
    capture: str = ""
    probe: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    probe_var: str = ""
    secret_stdin: bool = False
    retry: bool = False

    def commands(self) -> list[tuple[str, ...]]:
        """Every command this step may run (probe, update, main)."""
        return [c for c in (self.probe, self.update, self.argv) if c]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    folder: str
    entry_point: str
    trigger: dict[str, Any]
    service_account: str
    memory: str
    timeout: int
    max_instances: int

    @property
    def kind(self) -> str:
        return self.trigger["type"]


@dataclass
class Plan:
    project: str
    region: str
    build_dir: Path
    functions: list[FunctionSpec]
    jobs: list[dict[str, Any]]
    steps: list[Step] = field(default_factory=list)
    placeholders: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def bucket_name(project: str, role: str) -> str:
    return f"{project}-{role}"


def var_name(prefix: str, function_name: str) -> str:
    return f"{prefix}_{function_name.upper().replace('-', '_')}"


def validate(project: str, region: str, firebase_config: dict[str, Any]) -> None:
    """Refuse emulator-only projects, malformed ids and a region Hosting does not route to."""
    if not PROJECT_RE.match(project or ""):
        raise PlanError(f"--project {project!r} is not a Google Cloud project id")
    if project.startswith("demo-"):
        raise PlanError(f"--project {project!r}: demo-* projects are emulator-only")
    if not FIRESTORE_PITR_DAYS <= RESIDUAL_COPY_DAYS <= 90:
        raise PlanError(f"residual_copy_days={RESIDUAL_COPY_DAYS}: PITR keeps 7 days and GCS "
                        "soft delete takes 7 to 90 days")
    if not REGION_RE.match(region or ""):
        raise PlanError(f"--region {region!r} is not a Google Cloud region")
    rewrite_regions = {r["function"].get("region", "us-central1")
                       for r in firebase_config.get("hosting", {}).get("rewrites", [])
                       if isinstance(r.get("function"), dict)}
    if rewrite_regions and rewrite_regions != {region}:
        raise PlanError(f"--region {region}: firebase.json's Hosting rewrites route to "
                        f"{', '.join(sorted(rewrite_regions))}; deploy there or edit firebase.json")


def function_specs(table: list[dict[str, Any]], project: str) -> list[FunctionSpec]:
    specs = []
    for fn in table:
        if fn["name"] not in SIZING or fn["name"] not in iam.GRANTS:
            raise PlanError(f"{fn['name']}: add it to deploy/plan.py SIZING and deploy/iam.py GRANTS")
        memory, timeout, max_instances = SIZING[fn["name"]]
        sa = iam.email(iam.service_account_id(fn["name"]), project)
        specs.append(FunctionSpec(fn["name"], fn["folder"], fn["entry_point"], fn["trigger"], sa,
                                  memory, timeout, max_instances))
    return specs


def cors_rules(origins: list[str]) -> dict[str, list[dict[str, Any]]]:
    """CORS per bucket role: resumable uploads from the browser; viewer reads of signed URLs."""
    upload = [{"origin": origins, "method": ["PUT", "POST"],
               "responseHeader": ["Content-Type", "Content-Range", "Range", "Location",
                                  "X-Goog-Upload-Status", "X-Goog-Resumable"],
               "maxAgeSeconds": 3600}]
    read = [{"origin": origins, "method": ["GET", "HEAD"],
             "responseHeader": ["Content-Type", "Content-Length", "Content-Range", "Range",
                                "ETag"],
             "maxAgeSeconds": 3600}]
    return {"uploads": upload, "instances": read, "derived": read}


def lifecycle_uploads() -> dict[str, Any]:
    return {"rule": [{"action": {"type": "Delete"},
                      "condition": {"age": UPLOAD_OBJECT_MAX_AGE_DAYS}}]}


# The 30-day clock (docs/retention.md, watch_deadlines): one ERROR line per overdue
# data-subject request per daily run; this log-based alert policy notifies the privacy lead
# (its notification channel is an operator checklist item: docs/deploy.md).
OVERDUE_EVENT = "privacy_request_overdue"  # pacs.log_events.privacy_request_overdue
OVERDUE_ALERT = "PACS: data-subject request overdue"


def overdue_alert_policy() -> dict[str, Any]:
    """A log-based alert policy (Cloud Monitoring) on the overdue-request log lines."""
    return {
        "displayName": OVERDUE_ALERT,
        "documentation": {
            "mimeType": "text/markdown",
            "content": "A data-subject request is past the privacy policy's 30 days. List "
                       "them with `pacs-admin --project PROJECT requests --overdue` and answer "
                       "them (docs/privacy.md). The log line holds the request id only."},
        "combiner": "OR",
        "conditions": [{
            "displayName": "privacy_request_overdue log lines",
            "conditionMatchedLog": {
                "filter": f'severity="ERROR" AND jsonPayload.event="{OVERDUE_EVENT}"'}}],
        "alertStrategy": {"notificationRateLimit": {"period": "3600s"},
                          "autoClose": "604800s"},
    }


def write_artifacts(build_dir: Path, origins: list[str]) -> dict[str, Path]:
    """Write the CORS and lifecycle files the bucket commands read; return their paths."""
    out = build_dir / "deploy"
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, rules in cors_rules(origins).items():
        path = out / f"cors-{role}.json"
        path.write_text(json.dumps(rules, indent=2) + "\n")
        paths[f"cors-{role}"] = path
    path = out / "lifecycle-uploads.json"
    path.write_text(json.dumps(lifecycle_uploads(), indent=2) + "\n")
    paths["lifecycle-uploads"] = path
    path = out / "alert-overdue-requests.json"
    path.write_text(json.dumps(overdue_alert_policy(), indent=2) + "\n")
    paths["alert-overdue-requests"] = path
    return paths


def repo_relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def env_vars(spec: FunctionSpec, project: str, region: str, origins: list[str]) -> dict[str, str]:
    """Runtime settings (functions/pacs/settings.py). GOOGLE_CLOUD_PROJECT is set explicitly:
    the 2nd-gen Python 3.12 runtime does not set it, and settings would fall back to
    ``demo-pacs``."""
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "PACS_REGION": region,
        "PACS_UPLOADS_BUCKET": bucket_name(project, "uploads"),
        "PACS_INSTANCES_BUCKET": bucket_name(project, "instances"),
        "PACS_DERIVED_BUCKET": bucket_name(project, "derived"),
        "PACS_VIEWER_ORIGIN": origins[0],
        # CORS of the dicomweb function (pacs.keys.cors); spaces: the list is one value.
        "PACS_HOSTING_ORIGINS": " ".join(origins),
        "PACS_POLICY_VERSION": policy_version(),
    }
    if spec.kind != "http":
        env["PACS_EVENT_DEADLINE_SECONDS"] = str(spec.timeout)
    if any(g.role == "roles/iam.serviceAccountTokenCreator" and g.scope == "self"
           for g in iam.GRANTS[spec.name]):
        env["PACS_SIGNING_SERVICE_ACCOUNT"] = spec.service_account
    return env


def deploy_argv(spec: FunctionSpec, plan: Plan, origins: list[str], events_sa: str,
                build_sa: str) -> tuple[str, ...]:
    p, r = plan.project, plan.region
    env = env_vars(spec, p, r, origins)
    argv = [
        "gcloud", "functions", "deploy", spec.name,
        "--gen2",
        f"--runtime={RUNTIME}",
        f"--region={r}",
        f"--project={p}",
        f"--source={repo_relative(plan.build_dir / 'functions' / spec.name)}",
        f"--entry-point={spec.entry_point}",
        f"--service-account={spec.service_account}",
        f"--build-service-account=projects/{p}/serviceAccounts/{build_sa}",
        f"--memory={spec.memory}",
        f"--timeout={spec.timeout}s",
        f"--max-instances={spec.max_instances}",
        "--set-env-vars=" + ",".join(f"{k}={v}" for k, v in env.items()),
        f"--set-secrets=PACS_HASH_KEY={iam.HASH_KEY_SECRET}:{HASH_KEY_VERSION}",
    ]
    if spec.kind == "http":
        argv += ["--trigger-http", "--allow-unauthenticated", "--ingress-settings=all"]
    elif spec.kind == "storage":
        event_type = STORAGE_EVENT_TYPES[spec.trigger.get("event", "finalized")]
        argv += [
            f"--trigger-event-filters=type={event_type}",
            f"--trigger-event-filters=bucket={bucket_name(p, spec.trigger['bucket'])}",
            f"--trigger-location={r}",
            f"--trigger-service-account={events_sa}",
            "--retry",
            "--no-allow-unauthenticated",
            "--ingress-settings=internal-only",
        ]
    elif spec.kind == "pubsub":
        argv += [
            f"--trigger-topic={spec.trigger['topic']}",
            f"--trigger-service-account={events_sa}",
            "--retry",
            "--no-allow-unauthenticated",
            "--ingress-settings=internal-only",
        ]
    else:
        raise PlanError(f"{spec.name}: unknown trigger type {spec.kind!r}")
    return tuple(argv)


def topics(table: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> list[str]:
    names = {fn["trigger"]["topic"] for fn in table if fn["trigger"]["type"] == "pubsub"}
    names |= {job["topic"] for job in jobs}
    names |= {g.target for grants in iam.GRANTS.values() for g in grants if g.scope == "topic"}
    return sorted(names)


def build_plan(project: str, region: str, table: list[dict[str, Any]],
               schedule: dict[str, Any], build_dir: Path, artifacts: dict[str, Path],
               origins: list[str]) -> Plan:
    """Every command, in order (see the module docstring and docs/deploy.md)."""
    p, r = project, region
    gp = f"--project={p}"
    specs = function_specs(table, project)
    jobs = list(schedule["jobs"])
    plan = Plan(project, region, build_dir, specs, jobs)
    steps = plan.steps
    events_sa = iam.email(iam.EVENTS_SA_ID, p)
    build_sa = iam.email(iam.BUILD_SA_ID, p)
    pubsub_agent = "service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
    plan.placeholders.update({
        "PROJECT_NUMBER": "123456789012",
        "GCS_SERVICE_AGENT": "service-123456789012@gs-project-accounts.iam.gserviceaccount.com",
        "BACKUP_SCHEDULE": "0d0e0f10-0000-4000-8000-000000000000",
        "OVERDUE_POLICY": "projects/pacs-deploy-test/alertPolicies/1234567890123456789",
    })

    def add(section: str, *argv: str, **kw: Any) -> None:
        steps.append(Step(section, tuple(argv), **kw))

    # 1. APIs and the project number.
    s = "APIs"
    add(s, "gcloud", "services", "enable", *APIS, gp)
    add(s, "gcloud", "projects", "describe", p, "--format=value(projectNumber)",
        capture="PROJECT_NUMBER", comment="the project number names the service agents")

    # 2. Firestore: the database, point-in-time recovery, daily backups.
    s = "Firestore"
    add(s, "gcloud", "firestore", "databases", "create", "--database=(default)",
        f"--location={r}", "--type=firestore-native", "--delete-protection", gp,
        probe=("gcloud", "firestore", "databases", "describe", "--database=(default)", gp))
    add(s, "gcloud", "firestore", "databases", "update", "--database=(default)",
        "--enable-pitr", gp,
        comment=f"PITR keeps {FIRESTORE_PITR_DAYS} days of versions: erased documents are "
                f"gone from it after {FIRESTORE_PITR_DAYS} days")
    add(s, "gcloud", "firestore", "backups", "schedules", "list", "--database=(default)",
        "--format=value(name.basename())", "--limit=1", gp, capture="BACKUP_SCHEDULE")
    add(s, "gcloud", "firestore", "backups", "schedules", "create", "--database=(default)",
        "--recurrence=daily", f"--retention={BACKUP_RETENTION}", gp,
        probe_var="BACKUP_SCHEDULE",
        update=("gcloud", "firestore", "backups", "schedules", "update", "--database=(default)",
                "--backup-schedule=${BACKUP_SCHEDULE}", f"--retention={BACKUP_RETENTION}", gp),
        comment=f"backups expire after {BACKUP_RETENTION}: the erasure receipt's window")

    add(s, "gcloud", "firestore", "fields", "ttls", "update", "expire_at",
        "--collection-group=erasures", "--enable-ttl", "--database=(default)", "--async", gp,
        comment="backstop for purge_logs: erasure receipts go once past expire_at")
    add(s, "gcloud", "firestore", "fields", "ttls", "update", "expires_at",
        "--collection-group=download_links", "--enable-ttl", "--database=(default)", "--async",
        gp, comment="single-use study ZIP links (pacs.dicomweb.downloads) go once expired")

    # 3. The hash key secret (created once with a random value; never rotated in place).
    s = "Secret"
    add(s, "gcloud", "secrets", "create", iam.HASH_KEY_SECRET,
        "--replication-policy=user-managed", f"--locations={r}", "--data-file=-", gp,
        probe=("gcloud", "secrets", "describe", iam.HASH_KEY_SECRET, gp), secret_stdin=True,
        comment="PACS_HASH_KEY: a random key, created once (a new version would change "
                "every keyed id)")

    # 4. Buckets.
    s = "Buckets"
    for role in BUCKET_ROLES:
        gs = f"gs://{bucket_name(p, role)}"
        add(s, "gcloud", "storage", "buckets", "create", gs, f"--location={r}",
            "--default-storage-class=STANDARD", "--uniform-bucket-level-access",
            "--public-access-prevention", f"--soft-delete-duration={SOFT_DELETE}", gp,
            probe=("gcloud", "storage", "buckets", "describe", gs, "--format=value(name)", gp))
        update = ["gcloud", "storage", "buckets", "update", gs, "--uniform-bucket-level-access",
                  "--public-access-prevention", f"--soft-delete-duration={SOFT_DELETE}",
                  "--no-versioning", f"--cors-file={repo_relative(artifacts[f'cors-{role}'])}"]
        if role == "uploads":
            update.append(f"--lifecycle-file={repo_relative(artifacts['lifecycle-uploads'])}")
        add(s, *update, gp,
            comment=f"{role}: no public access, soft delete {SOFT_DELETE}, no versioning, CORS"
                    + (f", delete after {UPLOAD_OBJECT_MAX_AGE_DAYS} days" if role == "uploads"
                       else ""))

    # 5. Pub/Sub topics and the dead-letter topic.
    s = "Pub/Sub"
    for topic in [*topics(table, jobs), DEAD_LETTER_TOPIC]:
        add(s, "gcloud", "pubsub", "topics", "create", topic,
            f"--message-storage-policy-allowed-regions={r}", gp,
            probe=("gcloud", "pubsub", "topics", "describe", topic, "--format=value(name)", gp))
    add(s, "gcloud", "pubsub", "subscriptions", "create", DEAD_LETTER_HOLD,
        f"--topic={DEAD_LETTER_TOPIC}", f"--message-retention-duration={DEAD_LETTER_RETENTION}",
        "--expiration-period=never", gp,
        probe=("gcloud", "pubsub", "subscriptions", "describe", DEAD_LETTER_HOLD,
               "--format=value(name)", gp),
        comment="keeps dead-lettered events (ids only) for the operator")
    add(s, "gcloud", "pubsub", "topics", "add-iam-policy-binding", DEAD_LETTER_TOPIC,
        f"--member=serviceAccount:{pubsub_agent}", "--role=roles/pubsub.publisher",
        "--format=none", gp, retry=True,
        comment="Pub/Sub's service agent forwards undeliverable events to the dead-letter topic")

    # 6. Service accounts.
    s = "Service accounts"
    accounts = [(iam.service_account_id(f.name), f"PACS function {f.name}") for f in specs]
    accounts += [(iam.EVENTS_SA_ID, "PACS Eventarc trigger identity"),
                 (iam.BUILD_SA_ID, "PACS function builds")]
    for sa_id, display in accounts:
        add(s, "gcloud", "iam", "service-accounts", "create", sa_id,
            f"--display-name={display}", gp,
            probe=("gcloud", "iam", "service-accounts", "describe", iam.email(sa_id, p),
                   "--format=value(email)", gp))

    # 7. Grants (see deploy/iam.py for the reasons).
    s = "IAM"

    def grant(member_email: str, g: iam.Grant) -> None:
        member = f"--member=serviceAccount:{member_email}"
        role = f"--role={g.role}"
        if g.scope == "project":
            add(s, "gcloud", "projects", "add-iam-policy-binding", p, member, role,
                "--condition=None", "--format=none", retry=True)
        elif g.scope == "bucket":
            add(s, "gcloud", "storage", "buckets", "add-iam-policy-binding",
                f"gs://{bucket_name(p, g.target)}", member, role, "--format=none", gp,
                retry=True)
        elif g.scope == "topic":
            add(s, "gcloud", "pubsub", "topics", "add-iam-policy-binding", g.target, member,
                role, "--format=none", gp, retry=True)
        elif g.scope == "secret":
            add(s, "gcloud", "secrets", "add-iam-policy-binding", g.target, member, role,
                "--format=none", gp, retry=True)
        elif g.scope == "self":
            add(s, "gcloud", "iam", "service-accounts", "add-iam-policy-binding", member_email,
                member, role, "--format=none", gp, retry=True)
        elif g.scope != "function":  # function-level invoker grants follow each deploy
            raise PlanError(f"unknown grant scope {g.scope!r}")

    for spec in specs:
        for g in iam.GRANTS[spec.name]:
            grant(spec.service_account, g)
    for g in iam.EVENTS_GRANTS:
        grant(events_sa, g)
    for g in iam.BUILD_GRANTS:
        grant(build_sa, g)
    add(s, "gcloud", "storage", "service-agent", gp, capture="GCS_SERVICE_AGENT",
        comment="Cloud Storage's service agent publishes the bucket events Eventarc delivers")
    add(s, "gcloud", "projects", "add-iam-policy-binding", p,
        "--member=serviceAccount:${GCS_SERVICE_AGENT}", "--role=roles/pubsub.publisher",
        "--condition=None", "--format=none", retry=True)

    # 8. Functions; after each event function: its invoker and its dead-letter policy.
    s = "Functions"
    for spec in specs:
        add(s, *deploy_argv(spec, plan, origins, events_sa, build_sa),
            comment=f"{spec.name}: {spec.folder}/main.py:{spec.entry_point}, staged in "
                    f"{repo_relative(build_dir / 'functions' / spec.name)}")
        if spec.kind == "http":
            continue
        trig, sub = var_name("TRIGGER", spec.name), var_name("SUBSCRIPTION", spec.name)
        plan.placeholders[trig] = f"projects/{p}/locations/{r}/triggers/{spec.name}-000000"
        plan.placeholders[sub] = f"projects/{p}/subscriptions/eventarc-{r}-{spec.name}-000000-sub-000"
        add(s, "gcloud", "functions", "add-invoker-policy-binding", spec.name, f"--region={r}",
            f"--member=serviceAccount:{events_sa}", gp, retry=True,
            comment="only the trigger identity may invoke an event function")
        add(s, "gcloud", "functions", "describe", spec.name, "--gen2", f"--region={r}",
            "--format=value(eventTrigger.trigger)", gp, capture=trig)
        add(s, "gcloud", "eventarc", "triggers", "describe", "${" + trig + "}",
            f"--location={r}", "--format=value(transport.pubsub.subscription)", gp,
            capture=sub)
        add(s, "gcloud", "pubsub", "subscriptions", "add-iam-policy-binding", "${" + sub + "}",
            f"--member=serviceAccount:{pubsub_agent}", "--role=roles/pubsub.subscriber",
            "--format=none", gp, retry=True)
        add(s, "gcloud", "pubsub", "subscriptions", "update", "${" + sub + "}",
            f"--dead-letter-topic=projects/{p}/topics/{DEAD_LETTER_TOPIC}",
            f"--max-delivery-attempts={MAX_DELIVERY_ATTEMPTS}",
            f"--min-retry-delay={MIN_RETRY_DELAY}", f"--max-retry-delay={MAX_RETRY_DELAY}", gp,
            comment="dead-letter policy on the Eventarc trigger's subscription (re-applied on "
                    "every deploy: a redeploy may recreate the trigger)")

    # 9. Cloud Scheduler, from the one schedule definition.
    s = "Cloud Scheduler"
    tz = schedule.get("time_zone", "Etc/UTC")
    for job in jobs:
        body = json.dumps(job["data"], separators=(",", ":"), sort_keys=True)
        flags = (f"--location={r}", f"--schedule={job['schedule']}", f"--time-zone={tz}",
                 f"--topic=projects/{p}/topics/{job['topic']}", f"--message-body={body}", gp)
        add(s, "gcloud", "scheduler", "jobs", "create", "pubsub", job["name"], *flags,
            probe=("gcloud", "scheduler", "jobs", "describe", job["name"], f"--location={r}",
                   "--format=value(name)", gp),
            update=("gcloud", "scheduler", "jobs", "update", "pubsub", job["name"], *flags))

    # 10. Log retention.
    add("Cloud Logging", "gcloud", "logging", "buckets", "update", "_Default",
        "--location=global", f"--retention-days={LOG_RETENTION_DAYS}", gp,
        comment="the _Default bucket holds the functions' logs (ids only) and Data Access "
                "audit logs")
    phi_url = sorted(fn["name"] for fn in table
                     if fn["trigger"]["type"] == "http" and fn["name"] in privacy.PHI_IN_URL)
    if phi_url:
        flag = privacy.exclusion_flag(phi_url)
        add("Cloud Logging", "gcloud", "logging", "sinks", "list",
            f"--filter=name=_Default AND exclusions.name={privacy.REQUEST_LOG_EXCLUSION}",
            "--format=value(name)", gp, capture="PHI_URL_EXCLUSION",
            comment="request logs of services with PHI in URLs (DICOMweb QIDO-RS) are never "
                    "stored")
        add("Cloud Logging", "gcloud", "logging", "sinks", "update", "_Default",
            f"--add-exclusion={flag}", gp, probe_var="PHI_URL_EXCLUSION",
            update=("gcloud", "logging", "sinks", "update", "_Default",
                    f"--update-exclusion={flag}", gp))

    # 10b. The 30-day clock: an alert on overdue data-subject requests.
    s = "Cloud Monitoring"
    alert_file = f"--policy-from-file={repo_relative(artifacts['alert-overdue-requests'])}"
    add(s, "gcloud", "alpha", "monitoring", "policies", "list",
        f'--filter=displayName="{OVERDUE_ALERT}"', "--format=value(name)", "--limit=1", gp,
        capture="OVERDUE_POLICY")
    add(s, "gcloud", "alpha", "monitoring", "policies", "create", alert_file, gp,
        probe_var="OVERDUE_POLICY",
        update=("gcloud", "alpha", "monitoring", "policies", "update", "${OVERDUE_POLICY}",
                alert_file, gp),
        comment="one alert per overdue request (the watch_deadlines job logs them daily); "
                "attach the privacy lead's notification channel (operator checklist)")

    # 11. Firebase: Hosting, Firestore rules and indexes, Storage rules.
    add("Firebase", FIREBASE_CLI, "deploy", "--only", FIREBASE_ONLY, "--project", p,
        "--non-interactive")
    return plan


# ---------------------------------------------------------------------------- rendering

SECRET_CMD = "python3 -c 'import secrets; print(secrets.token_hex(32), end=\"\")'"
RETRY_FN = ('retry() { for delay in 5 10 20 40; do "$@" && return 0; '
            'echo "retrying in ${delay}s" >&2; sleep "$delay"; done; "$@"; }')


def quote(token: str) -> str:
    """Shell-quote one argument; ``${VAR}`` placeholders stay expandable."""
    if VAR_RE.search(token):
        if re.search(r'["`\\]|\$\(', token) or VAR_RE.sub("", token).count("$"):
            raise PlanError(f"cannot quote {token!r}")
        return f'"{token}"'
    return shlex.quote(token)


def render_command(argv: tuple[str, ...], indent: str = "") -> str:
    """One command, one flag per continuation line."""
    head: list[str] = []
    rest = list(argv)
    while rest and not rest[0].startswith("-"):
        head.append(rest.pop(0))
    lines = [" ".join(quote(t) for t in head)]
    i = 0
    while i < len(rest):
        tok = quote(rest[i])
        if i + 1 < len(rest) and "=" not in rest[i] and not rest[i + 1].startswith("-"):
            tok += " " + quote(rest[i + 1])  # "--only hosting,..." stays on one line
            i += 1
        lines.append(tok)
        i += 1
    return (" \\\n" + indent + "    ").join(lines) if len(lines) > 1 else lines[0]


def render_step(step: Step) -> str:
    cmd = render_command(step.argv)
    if step.retry:
        cmd = "retry " + cmd
    if step.secret_stdin:
        cmd = f"{SECRET_CMD} | {cmd}"
    if step.capture:
        return f'{step.capture}="$({cmd})"'
    if step.probe_var:
        return (f'if [ -z "${{{step.probe_var}}}" ]; then\n  {render_command(step.argv, "  ")}\n'
                f"else\n  {render_command(step.update, '  ')}\nfi")
    if step.probe:
        probe = render_command(step.probe, "  ") + " >/dev/null 2>&1"
        if step.update:
            return (f"if {probe}; then\n  {render_command(step.update, '  ')}\n"
                    f"else\n  {render_command(step.argv, '  ')}\nfi")
        body = cmd.replace("\n", "\n  ")
        return f"if ! {probe}; then\n  {body}\nfi"
    return cmd


def render_script(plan: Plan, staged: list[str] | None = None) -> str:
    out = [
        "#!/usr/bin/env bash",
        f"# PACS deploy plan for project {plan.project}, region {plan.region}.",
        "# Dry run: nothing below has run. `make deploy ... APPLY=1` runs exactly this script.",
        "# ${NAME} values are looked up by the commands that set them, at apply time.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(ROOT))}",
        RETRY_FN,
    ]
    for warning in plan.warnings:
        out.append(f"# WARNING: {warning}")
    if staged:
        out.append("")
        out.append("# Staged (one build folder per function: main.py, pacs/, requirements.txt):")
        out.extend(f"#   {line}" for line in staged)
    section = None
    number = 0
    for step in plan.steps:
        if step.section != section:
            section = step.section
            number += 1
            out.append("")
            out.append(f"# ==== {number}. {section} ====")
        if step.comment:
            out.append(f"# {step.comment}")
        out.append(render_step(step))
    out.append("")
    out.append('echo "deploy complete"')
    return "\n".join(out) + "\n"
