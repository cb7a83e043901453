"""Runs a scenario of viewer_scenarios.mjs (the viewer's browser scenarios) in headless
Chromium against a web stack; used by the viewer tests and the viewer benchmark."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.webstack import ARTIFACTS, WEB, WebStack

SCENARIOS = Path(__file__).with_name("viewer_scenarios.mjs")


def run_viewer_scenario(name: str, web: WebStack, args: dict[str, Any], timeout: float = 300
                        ) -> dict[str, Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    payload = {"url": web.url, "artifacts": str(ARTIFACTS), **args}
    proc = subprocess.run(["node", str(SCENARIOS), name, json.dumps(payload)], cwd=WEB,
                          capture_output=True, text=True, timeout=timeout)
    (ARTIFACTS / f"viewer-{name}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"viewer scenario {name} failed (exit {proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])
