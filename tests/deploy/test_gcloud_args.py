"""Every gcloud command the dry run prints, run through the installed gcloud with no
credentials (an empty ``CLOUDSDK_CONFIG``): each must get as far as needing an account,
so every flag and value was accepted; none may fail on an unknown flag or a bad argument.

One command of each shape (command group plus set of flags) runs in the fast test, the
other commands in the slow one, so together they run each printed command once.
``${VAR}`` values the script captures at apply time are filled with well-formed examples.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deploy import plan as planmod
from tests.deploy import printed
from tests.deploy.conftest import PROJECT, REGION, ROOT

NEEDS_CREDENTIALS = re.compile(
    r"You do not currently have an active account selected|gcloud auth login", re.I)
BAD_ARGUMENTS = re.compile(
    r"unrecognized arguments|Invalid value|argument [-\w]+: |invalid choice|expected one argument"
    r"|Must be specified|is not a valid|INVALID_ARGUMENT|mutually exclusive|Bad syntax"
    r"|is required but was not provided", re.I)

pytestmark = pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud not installed")


def _placeholders() -> dict[str, str]:
    table = json.loads((ROOT / "infra" / "functions.json").read_text())["functions"]
    schedule = json.loads((ROOT / "infra" / "schedules.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = planmod.write_artifacts(Path(tmp), ["https://x.web.app"])
        plan = planmod.build_plan(PROJECT, REGION, table, schedule, Path(tmp), artifacts,
                                  ["https://x.web.app"])
    return plan.placeholders


def _fill(argv: list[str], values: dict[str, str]) -> tuple[str, ...]:
    return tuple(planmod.VAR_RE.sub(lambda m: values[m.group(1)], token) for token in argv)


def _shape(argv: tuple[str, ...]) -> tuple:
    flags = frozenset(t.split("=", 1)[0] for t in argv if t.startswith("--"))
    positionals = sum(1 for t in argv[3:] if not t.startswith("--"))
    return tuple(argv[:3]), flags, positionals


def _partition(script: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    values = _placeholders()
    firsts: dict[tuple, tuple[str, ...]] = {}
    rest: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    for argv in printed.commands(script):
        filled = _fill(argv, values)
        if filled in seen:
            continue
        seen.add(filled)
        if _shape(filled) in firsts:
            rest.append(filled)
        else:
            firsts[_shape(filled)] = filled
    return list(firsts.values()), rest


def _run(argv: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLOUDSDK_", "GOOGLE_", "GCLOUD_", "GCE_"))
           and "EMULATOR" not in k}
    with tempfile.TemporaryDirectory(prefix="gcloud-nocreds-") as config_dir:
        env.update({"CLOUDSDK_CONFIG": config_dir, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
                    "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
                    "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9",
                    "NO_GCE_CHECK": "True"})
        if os.environ.get("CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE"):
            env["CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE"] = os.environ[
                "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE"]
        return subprocess.run(list(argv), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=180)


def _check_all(commands: list[tuple[str, ...]]) -> None:
    workers = max(2, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda argv: (argv, _run(argv)), commands))
    failures = []
    for argv, proc in results:
        text = (proc.stderr + proc.stdout).strip()
        if proc.returncode == 0:
            failures.append(f"{' '.join(argv)}\n    -> succeeded without credentials")
        elif BAD_ARGUMENTS.search(text) or not NEEDS_CREDENTIALS.search(text):
            failures.append(f"{' '.join(argv)}\n    -> {text[:500]}")
    assert not failures, f"{len(failures)} of {len(commands)} commands:\n" + "\n".join(failures)


def test_every_placeholder_is_captured_before_use(dry_run):
    script = "\n".join(line for line in dry_run.stdout.splitlines()
                       if not line.lstrip().startswith("#"))
    variables = set(planmod.VAR_RE.findall(script))
    assert {"PROJECT_NUMBER", "GCS_SERVICE_AGENT"} <= variables
    for var in sorted(variables):
        assigned = script.find(f'{var}="$(')
        assert assigned != -1, f"${{{var}}} is never captured"
        first_use = script.find("${" + var + "}")
        assert assigned < first_use, f"${{{var}}} used before it is captured"


def test_partition_covers_every_printed_command(dry_run):
    firsts, rest = _partition(dry_run.stdout)
    values = _placeholders()
    every = {_fill(argv, values) for argv in printed.commands(dry_run.stdout)}
    assert set(firsts) | set(rest) == every
    assert len(every) > 100 and len(firsts) < 60


def test_gcloud_accepts_each_command_shape(dry_run):
    """Fast: one printed command per shape."""
    firsts, _ = _partition(dry_run.stdout)
    _check_all(firsts)


@pytest.mark.slow
def test_gcloud_accepts_every_other_printed_command(dry_run):
    """Slow: every remaining printed command (same shapes, other values)."""
    _, rest = _partition(dry_run.stdout)
    _check_all(rest)
