"""Runs a scenario of viewer_scenarios.mjs (the viewer's browser scenarios) in headless
Chromium against a web stack; used by the viewer tests and the viewer benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.webstack import WebStack, run_node

SCENARIOS = Path(__file__).with_name("viewer_scenarios.mjs")


def run_viewer_scenario(name: str, web: WebStack, args: dict[str, Any], timeout: float = 300
                        ) -> dict[str, Any]:
    return run_node(SCENARIOS, f"viewer-{name}", {"url": web.url, **args}, (name,), timeout)
