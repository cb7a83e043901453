"""Fixtures of the deploy tests: one dry run of ``python -m deploy`` into a temporary build
folder (so the repository's build/ is left alone)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "pacs-deploy-test"
REGION = "europe-west1"


@dataclass
class DryRun:
    stdout: str
    stderr: str
    build_dir: Path
    table: list[dict]
    schedule: dict


def run_deploy(*args: str, build_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy", *args, "--build-dir", str(build_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def dry_run(tmp_path_factory) -> DryRun:
    build_dir = tmp_path_factory.mktemp("deploy-build")
    proc = run_deploy("--project", PROJECT, "--region", REGION, build_dir=build_dir)
    assert proc.returncode == 0, proc.stderr
    return DryRun(proc.stdout, proc.stderr, build_dir,
                  json.loads((ROOT / "infra" / "functions.json").read_text())["functions"],
                  json.loads((ROOT / "infra" / "schedules.json").read_text()))
