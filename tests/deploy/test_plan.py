"""The dry run's printed plan, read back from its text: trigger, runtime, service account,
retry and region of every function; every scheduled job; invoker, dead letters, buckets,
retention settings; and the arguments it refuses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from deploy import iam
from deploy import plan as planmod
from tests.deploy import printed
from tests.deploy.conftest import PROJECT, REGION, ROOT, run_deploy


def _deploys(stdout: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for argv in printed.commands(stdout):
        if argv[1:3] == ["functions", "deploy"]:
            assert argv[3] not in found, f"{argv[3]} deployed twice"
            found[argv[3]] = argv
    return found


def _one(argv: list[str], flag: str) -> str:
    values = printed.flag_values(argv, flag)
    assert len(values) == 1, f"{flag} in {' '.join(argv)}"
    return values[0]


def _env(argv: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in _one(argv, "--set-env-vars").split(","))


def test_output_is_the_written_script_and_valid_bash(dry_run):
    script = dry_run.build_dir / "deploy" / "deploy.sh"
    assert script.read_text() == dry_run.stdout
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert dry_run.stdout.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in dry_run.stdout
    assert "Dry run only" in dry_run.stderr


def test_every_function_trigger_runtime_account_retry_region(dry_run):
    deploys = _deploys(dry_run.stdout)
    assert set(deploys) == {fn["name"] for fn in dry_run.table}
    for fn in dry_run.table:
        argv = deploys[fn["name"]]
        name, trigger = fn["name"], fn["trigger"]
        assert "--gen2" in argv
        assert _one(argv, "--runtime") == "python312"
        assert _one(argv, "--region") == REGION
        assert _one(argv, "--project") == PROJECT
        assert _one(argv, "--entry-point") == fn["entry_point"]
        assert _one(argv, "--service-account") == f"pacs-{name}@{PROJECT}.iam.gserviceaccount.com"
        source = dry_run.build_dir / "functions" / name
        assert _one(argv, "--source") == str(source)
        assert (source / "main.py").is_file()
        assert _one(argv, "--set-secrets") == f"PACS_HASH_KEY={iam.HASH_KEY_SECRET}:1"
        env = _env(argv)
        assert env["GOOGLE_CLOUD_PROJECT"] == PROJECT
        assert env["PACS_REGION"] == REGION
        for role in planmod.BUCKET_ROLES:
            assert env[f"PACS_{role.upper()}_BUCKET"] == f"{PROJECT}-{role}"
        if trigger["type"] == "http":
            assert "--trigger-http" in argv and "--allow-unauthenticated" in argv
            assert "--retry" not in argv
            assert _one(argv, "--ingress-settings") == "all"
            continue
        # Event functions: retried, private, invoked only by the trigger identity.
        assert "--retry" in argv, name
        assert "--allow-unauthenticated" not in argv and "--no-allow-unauthenticated" in argv
        assert _one(argv, "--ingress-settings") == "internal-only"
        assert _one(argv, "--trigger-service-account") == f"pacs-events@{PROJECT}.iam.gserviceaccount.com"
        assert _one(argv, "--timeout") == f"{planmod.EVENT_TIMEOUT_SECONDS}s" == "540s"
        assert env["PACS_EVENT_DEADLINE_SECONDS"] == "540"
        if trigger["type"] == "storage":
            filters = printed.flag_values(argv, "--trigger-event-filters")
            assert sorted(filters) == sorted([
                "type=google.cloud.storage.object.v1.finalized",
                f"bucket={PROJECT}-{trigger['bucket']}"])
            assert _one(argv, "--trigger-location") == REGION
        else:
            assert trigger["type"] == "pubsub"
            assert _one(argv, "--trigger-topic") == trigger["topic"]


def test_public_invoker_only_on_http_functions(dry_run):
    http = {fn["name"] for fn in dry_run.table if fn["trigger"]["type"] == "http"}
    public = {name for name, argv in _deploys(dry_run.stdout).items()
              if "--allow-unauthenticated" in argv}
    assert public == http
    for argv in printed.commands(dry_run.stdout):
        assert not any("allUsers" in t or "allAuthenticatedUsers" in t for t in argv), argv
        if argv[1:3] == ["functions", "add-invoker-policy-binding"]:
            assert argv[3] not in http
            assert _one(argv, "--member") == f"serviceAccount:pacs-events@{PROJECT}.iam.gserviceaccount.com"
    invoked = {argv[3] for argv in printed.commands(dry_run.stdout)
               if argv[1:3] == ["functions", "add-invoker-policy-binding"]}
    assert invoked == {fn["name"] for fn in dry_run.table} - http


def test_dead_letter_policy_on_every_event_trigger_subscription(dry_run):
    script = dry_run.stdout
    cmds = printed.commands(script)
    events = [fn["name"] for fn in dry_run.table if fn["trigger"]["type"] != "http"]
    for name in events:
        trig, sub = planmod.var_name("TRIGGER", name), planmod.var_name("SUBSCRIPTION", name)
        assert re.search(rf'^{trig}="\$\(gcloud functions describe {name} ', script, re.M)
        assert re.search(rf'^{sub}="\$\(gcloud eventarc triggers describe "\${{{trig}}}"', script,
                         re.M)
        updates = [c for c in cmds if c[1:4] == ["pubsub", "subscriptions", "update"]
                   and c[4] == "${" + sub + "}"]
        assert len(updates) == 1, name
        update = updates[0]
        assert _one(update, "--dead-letter-topic") == f"projects/{PROJECT}/topics/pacs-dead-letter"
        assert 5 <= int(_one(update, "--max-delivery-attempts")) <= 100
        assert _one(update, "--min-retry-delay") and _one(update, "--max-retry-delay")
        # Pub/Sub's service agent may pull from it and publish to the dead-letter topic.
        assert any(c[1:4] == ["pubsub", "subscriptions", "add-iam-policy-binding"]
                   and c[4] == "${" + sub + "}"
                   and _one(c, "--role") == "roles/pubsub.subscriber" for c in cmds)
    assert any(c[1:5] == ["pubsub", "topics", "add-iam-policy-binding", "pacs-dead-letter"]
               and _one(c, "--role") == "roles/pubsub.publisher"
               and "gcp-sa-pubsub" in _one(c, "--member") for c in cmds)
    assert any(c[1:5] == ["pubsub", "subscriptions", "create", "pacs-dead-letter-hold"]
               for c in cmds)


def test_every_scheduled_job_of_the_schedule_definition(dry_run):
    cmds = printed.commands(dry_run.stdout)
    jobs = dry_run.schedule["jobs"]
    assert jobs
    for verb in ("create", "update"):
        found = {c[5]: c for c in cmds if c[1:5] == ["scheduler", "jobs", verb, "pubsub"]}
        assert set(found) == {job["name"] for job in jobs}
        for job in jobs:
            argv = found[job["name"]]
            assert _one(argv, "--schedule") == job["schedule"]
            assert _one(argv, "--time-zone") == dry_run.schedule["time_zone"]
            assert _one(argv, "--topic") == f"projects/{PROJECT}/topics/{job['topic']}"
            assert json.loads(_one(argv, "--message-body")) == job["data"]
            assert _one(argv, "--location") == REGION
            assert _one(argv, "--project") == PROJECT


def test_topics_service_accounts_and_grants(dry_run):
    cmds = printed.commands(dry_run.stdout)
    created_topics = {c[4] for c in cmds if c[1:4] == ["pubsub", "topics", "create"]}
    needed = {fn["trigger"]["topic"] for fn in dry_run.table if fn["trigger"]["type"] == "pubsub"}
    needed |= {job["topic"] for job in dry_run.schedule["jobs"]} | {"pacs-dead-letter"}
    assert needed <= created_topics
    created_accounts = {c[4] for c in cmds if c[1:4] == ["iam", "service-accounts", "create"]}
    assert created_accounts == {f"pacs-{fn['name']}" for fn in dry_run.table} | {
        "pacs-events", "pacs-build"}
    # One account per function, never a broad role, sign-link signs as itself.
    for c in cmds:
        if "add-iam-policy-binding" in c and "--role" in " ".join(c):
            role = _one(c, "--role")
            assert role not in ("roles/owner", "roles/editor", "roles/viewer",
                                "roles/storage.admin", "roles/iam.serviceAccountUser"), c
    sign = f"pacs-sign-link@{PROJECT}.iam.gserviceaccount.com"
    assert any(c[1:4] == ["iam", "service-accounts", "add-iam-policy-binding"] and c[4] == sign
               and _one(c, "--member") == f"serviceAccount:{sign}"
               and _one(c, "--role") == "roles/iam.serviceAccountTokenCreator" for c in cmds)
    token_creators = {c[4] for c in cmds if c[1:4] == ["iam", "service-accounts",
                                                       "add-iam-policy-binding"]}
    for account in token_creators:  # token creator only ever on the account itself
        assert all(_one(c, "--member") == f"serviceAccount:{account}" for c in cmds
                   if c[1:4] == ["iam", "service-accounts", "add-iam-policy-binding"]
                   and c[4] == account)
    # No function may touch the uploads bucket unless its code path needs it.
    uploads = {_one(c, "--member") for c in cmds
               if c[1:5] == ["storage", "buckets", "add-iam-policy-binding",
                             f"gs://{PROJECT}-uploads"]}
    assert {m.split(":")[1].split("@")[0] for m in uploads} == {
        "pacs-create-upload", "pacs-on-upload-finalized", "pacs-continue-upload",
        "pacs-studies", "pacs-run-privacy-job", "pacs-run-retention-job"}
    # The storage service agent publishes the bucket events.
    assert 'GCS_SERVICE_AGENT="$(gcloud storage service-agent' in dry_run.stdout


def test_iam_table_covers_the_function_table():
    table = json.loads((ROOT / "infra" / "functions.json").read_text())["functions"]
    assert set(iam.GRANTS) == {fn["name"] for fn in table}
    assert set(planmod.SIZING) == {fn["name"] for fn in table}
    for name, grants in iam.GRANTS.items():
        assert iam.HASH_KEY in grants, name
        assert all(g.why for g in grants)
        for g in grants:
            if g.scope == "bucket":
                assert g.target in planmod.BUCKET_ROLES


def test_buckets_cors_and_residual_copies(dry_run):
    cmds = printed.commands(dry_run.stdout)
    residual = planmod.RESIDUAL_COPY_DAYS
    assert residual <= 30  # the privacy response window
    for role in planmod.BUCKET_ROLES:
        gs = f"gs://{PROJECT}-{role}"
        create = [c for c in cmds if c[1:5] == ["storage", "buckets", "create", gs]]
        update = [c for c in cmds if c[1:5] == ["storage", "buckets", "update", gs]]
        assert len(create) == len(update) == 1
        assert _one(create[0], "--location") == REGION
        assert "--public-access-prevention" in create[0]
        assert "--uniform-bucket-level-access" in create[0]
        for argv in (create[0], update[0]):
            assert _one(argv, "--soft-delete-duration") == f"{residual}d"
        assert "--no-versioning" in update[0] and "--versioning" not in update[0]
        cors = json.loads((ROOT / _one(update[0], "--cors-file")).read_text())
        assert cors[0]["origin"] == [f"https://{PROJECT}.web.app",
                                     f"https://{PROJECT}.firebaseapp.com"]
        if role == "uploads":
            assert {"PUT", "POST"} <= set(cors[0]["method"])
            # The browser reads Range from a 308 to resume where Storage stopped.
            assert "Range" in cors[0]["responseHeader"]
            lifecycle = json.loads((ROOT / _one(update[0], "--lifecycle-file")).read_text())
            assert lifecycle["rule"][0]["action"]["type"] == "Delete"
        else:
            assert set(cors[0]["method"]) == {"GET", "HEAD"}
    # Firestore: PITR (7 days) and backups expire within the residual window; no versioning.
    assert planmod.FIRESTORE_PITR_DAYS <= residual
    assert any(c[1:4] == ["firestore", "databases", "update"] and "--enable-pitr" in c
               for c in cmds)
    for c in cmds:
        if c[1:4] == ["firestore", "backups", "schedules"] and c[4] in ("create", "update"):
            assert _one(c, "--retention") == f"{residual}d"
    logging = [c for c in cmds if c[1:4] == ["logging", "buckets", "update"]]
    assert len(logging) == 1 and logging[0][4] == "_Default"
    assert _one(logging[0], "--retention-days") == str(planmod.LOG_RETENTION_DAYS)


def test_retention_numbers_come_from_settings():
    from pacs.settings import Settings

    defaults = Settings.from_env({})
    assert planmod.EVENT_TIMEOUT_SECONDS == defaults.event_deadline_seconds
    if hasattr(defaults, "residual_copy_days"):
        assert planmod.RESIDUAL_COPY_DAYS == defaults.residual_copy_days
    if hasattr(defaults, "log_retention_days"):
        assert planmod.LOG_RETENTION_DAYS == defaults.log_retention_days
    assert planmod.UPLOAD_OBJECT_MAX_AGE_DAYS * 24 > defaults.pending_upload_expiry_hours


def test_firebase_deploy_and_firebase_json(dry_run):
    firebase = [argv for argv in printed.commands(dry_run.stdout, programs=("firebase",))]
    assert len(firebase) == 1
    argv = firebase[0]
    assert argv[1] == "deploy" and "--non-interactive" in argv
    assert set(_one(argv, "--only").split(",")) == {"hosting", "firestore:rules",
                                                    "firestore:indexes", "storage"}
    assert _one(argv, "--project") == PROJECT
    config = json.loads((ROOT / "firebase.json").read_text())
    for path in (config["firestore"]["rules"], config["firestore"]["indexes"],
                 config["storage"]["rules"]):
        assert (ROOT / path).is_file(), path
    json.loads((ROOT / config["firestore"]["indexes"]).read_text())
    assert config["hosting"]["public"]
    http = {fn["name"] for fn in json.loads((ROOT / "infra" / "functions.json").read_text())[
        "functions"] if fn["trigger"]["type"] == "http"}
    rewrites = [r["function"] for r in config["hosting"]["rewrites"] if "function" in r]
    assert rewrites
    for target in rewrites:
        assert target["functionId"] in http
        assert target["region"] == REGION


@pytest.mark.parametrize("args, message", [
    (["--project", "demo-pacs", "--region", REGION], "emulator-only"),
    (["--project", "Bad_Project", "--region", REGION], "not a Google Cloud project id"),
    (["--project", PROJECT, "--region", "us-central1"], "Hosting rewrites route to"),
    (["--project", PROJECT, "--region", "nowhere"], "not a Google Cloud region"),
])
def test_refuses(args, message, tmp_path):
    proc = run_deploy(*args, build_dir=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


def test_makefile_deploy_target():
    text = (ROOT / "Makefile").read_text()
    target = re.search(r"^deploy:.*\n((?:\t.*\n)+)", text, re.M)
    assert target, "no deploy: target"
    assert ("$(PY) -m deploy --project $(PROJECT) --region $(REGION) $(if $(APPLY),--apply,)"
            in target.group(1))


def test_apply_refuses_without_gcloud_before_running_anything(tmp_path):
    """--apply checks the machine first; with no gcloud on PATH nothing runs."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    proc = subprocess.run([sys.executable, "-m", "deploy", "--project", PROJECT, "--region",
                           REGION, "--apply", "--build-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "gcloud is not on PATH" in proc.stderr
    assert "Applying" not in proc.stderr


def test_every_function_is_given_a_hash_key_it_may_read_and_that_it_accepts(dry_run):
    """Deployed functions refuse to start without PACS_HASH_KEY of at least 32 bytes
    (pacs.settings.hash_key_from_env): every one is given the pinned secret version, its
    account may read that secret, and the value the plan creates passes the check."""
    from pacs.settings import HASH_KEY_MIN_BYTES, HASH_KEY_SETTING, Settings

    deploys = _deploys(dry_run.stdout)
    readers = {_one(argv, "--member") for argv in printed.commands(dry_run.stdout)
               if argv[1:4] == ["secrets", "add-iam-policy-binding", iam.HASH_KEY_SECRET]
               and printed.flag_values(argv, "--role") == ["roles/secretmanager.secretAccessor"]}
    for fn in dry_run.table:
        name = fn["name"]
        assert _one(deploys[name], "--set-secrets") == \
            f"{HASH_KEY_SETTING}={iam.HASH_KEY_SECRET}:{planmod.HASH_KEY_VERSION}"
        assert iam.HASH_KEY in iam.GRANTS[name], name
        assert f"serviceAccount:pacs-{name}@{PROJECT}.iam.gserviceaccount.com" in readers, name
    # The secret is created by piping this command's output into gcloud.
    assert f"{planmod.SECRET_CMD} | gcloud secrets create {iam.HASH_KEY_SECRET}" in dry_run.stdout
    key = subprocess.run(["bash", "-c", planmod.SECRET_CMD], capture_output=True, text=True,
                         check=True).stdout
    assert len(key.encode()) >= HASH_KEY_MIN_BYTES
    # The function's environment as the plan sets it, plus the secret.
    deployed = Settings.from_env({**_env(deploys["sign-link"]), "K_SERVICE": "sign-link",
                                  HASH_KEY_SETTING: key})
    assert deployed.hash_key == key.encode()
