"""The local cloud as the browser sees it: a test stack plus its hosting server.

The stack runs under its own ``demo-test-*`` project on the emulator layer (reused when one
runs), with a Cloud Storage emulator of its own: fake-gcs-server serves signed path-style
URLs only for its ``-public-host``, and a layer started by an older checkout may lack it, so
the browser tests never depend on how the shared layer was started. That storage emulator
publishes to the layer's ``gcs-events`` topic like the shared one, so the stack's router
delivers its events as usual.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from localcloud import config, emulators, hosting, procs, stack
from tests.localcloud_fixture import (
    LocalCloud,
    delete_storage_subscription,
    start_emulators_if_needed,
)

ROOT = config.ROOT
WEB = ROOT / "web"
ARTIFACTS = ROOT / "test-artifacts"
RUNNER = WEB / "e2e" / "run.mjs"


@dataclass
class WebStack:
    cloud: LocalCloud
    url: str
    idle_url: str
    children: list[procs.Child] = field(default_factory=list)

    def analytics(self) -> list[dict[str, Any]]:
        return requests.get(self.url + "/__/analytics", timeout=10).json()["events"]

    def clear_analytics(self) -> None:
        requests.delete(self.url + "/__/analytics", timeout=10)


def _storage(tmp_root: Path, emulator_env: dict[str, str]) -> tuple[procs.Child, str]:
    port = stack.free_port()
    events_project = emulator_env["PACS_GCS_EVENTS_TOPIC"].split("/")[1]
    child = procs.spawn("e2e-storage", [
        str(emulators.fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1",
        "-port", str(port), "-external-url", f"http://127.0.0.1:{port}",
        "-public-host", f"127.0.0.1:{port}", "-backend", "memory",
        "-event.pubsub-project-id", events_project, "-event.pubsub-topic", config.GCS_EVENTS_TOPIC,
        "-event.list", "finalize,delete", "-log-level", "warn",
        "-cors-headers", "X-Goog-Upload-Protocol,X-Upload-Content-Length,X-Upload-Content-Type,Content-Range",
    ], {**{k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")},
        "PUBSUB_EMULATOR_HOST": emulator_env["PUBSUB_EMULATOR_HOST"]}, tmp_root / "logs")
    url = f"http://127.0.0.1:{port}"
    procs.wait_until(lambda: procs.http_answers(url + "/storage/v1/b"), 30, "e2e storage", child)
    return child, url


def start_web_stack(tmp_root: Path, idle_seconds: int = 6) -> WebStack:
    """Start storage, the stack and two hosting servers (the second with a short idle
    sign-out, for the automatic logoff test)."""
    base_env, owned = start_emulators_if_needed(tmp_root)
    children: list[procs.Child] = list(owned)
    try:
        storage, storage_url = _storage(tmp_root, base_env)
        children.append(storage)
        env = {**base_env, "STORAGE_EMULATOR_HOST": storage_url}
        # In-process clients (test helpers) reach the layer like start_test_cloud's; the
        # shared layer's storage stays the process default, so tests after these ones are
        # not pointed at this stack's storage emulator.
        for key, value in base_env.items():
            os.environ[key] = value
        web_port, idle_port = stack.free_port(), stack.free_port()
        project = f"demo-test-{uuid.uuid4().hex[:10]}"
        cfg = stack.StackConfig.ephemeral(project, extra_env={
            "PACS_VIEWER_ORIGIN": f"http://127.0.0.1:{web_port}",
            # The share test revokes and then expects the link dead at once; keep the
            # link lifetime short enough that the refresh logic runs within a test too.
            "PACS_LINK_TTL_SECONDS": "300",
            # Auto sign-out and re-authentication are exercised with a short recent window.
            "PACS_RECENT_SIGNIN_SECONDS": "120",
        })
        children += stack.start(cfg, env, tmp_root)
        children.append(hosting.start(cfg, env, tmp_root, port=web_port))
        children.append(hosting.start(cfg, env, tmp_root, port=idle_port, idle_seconds=idle_seconds))
    except BaseException:
        procs.stop_groups([c.pid for c in children if c not in owned])
        raise
    cloud = LocalCloud(project, cfg.function_env(env), cfg, tmp_root / "logs", children)
    return WebStack(cloud, f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{idle_port}",
                    children)


def stop_web_stack(web: WebStack) -> None:
    procs.stop_groups([c.pid for c in web.children])
    delete_storage_subscription(web.cloud)


def run_node(script: Path, log_name: str, payload: dict[str, Any], argv: tuple[str, ...] = (),
             timeout: float = 240) -> dict[str, Any]:
    """Run a browser script of ours under node (headless Chromium through playwright-core)
    with a JSON payload; keep its output in ``test-artifacts/{log_name}.log`` and return the
    JSON of its last ``RESULT`` line, or fail with its output."""
    ARTIFACTS.mkdir(exist_ok=True)
    payload = {"artifacts": str(ARTIFACTS), **payload}
    proc = subprocess.run(["node", str(script), *argv, json.dumps(payload)], cwd=WEB,
                          capture_output=True, text=True, timeout=timeout)
    (ARTIFACTS / f"{log_name}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"{log_name} failed (exit {proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def run_scenario(name: str, web: WebStack, args: dict[str, Any], timeout: float = 240
                 ) -> dict[str, Any]:
    """Run one scenario of web/e2e/run.mjs in headless Chromium; return its JSON result."""
    return run_node(RUNNER, name, {"url": web.url, "idleUrl": web.idle_url, **args}, (name,),
                    timeout)
