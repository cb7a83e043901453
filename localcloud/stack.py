"""A project's stack on the emulator layer: its buckets, rules, topics, one
functions-framework worker per function, the event router and (for ``make dev``) the
scheduler."""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localcloud import config, procs

FUNCTIONS_DIR = config.ROOT / "functions"


# Test stacks take ports below Linux's ephemeral range (32768-60999): a port from bind(0)
# is an ephemeral one, and an outgoing connection took one between this check and the
# function binding it (seen: gunicorn "Address already in use", events sent to another
# stack's function).
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now, outside the ephemeral range, not handed out before here."""
    for _ in range(500):
        port = random.randrange(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port in 20000-32000")


@dataclass
class StackConfig:
    """What one project's stack is: project id, bucket names, ports."""

    project: str
    buckets: dict[str, str]
    function_ports: dict[str, int]
    router_port: int
    deliveries: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    # > 0: Pub/Sub ack deadline of the router's subscriptions, never extended (fault tests).
    ack_deadline_seconds: int = 0

    @classmethod
    def fixed(cls, project: str = config.DEFAULT_PROJECT) -> StackConfig:
        """``make dev``'s stack: the fixed ports of infra/functions.json."""
        return cls(project, default_buckets(project),
                   {f["name"]: f["port"] for f in config.function_table()}, config.router_port())

    @classmethod
    def ephemeral(cls, project: str, **kwargs) -> StackConfig:
        """A test stack: free ports, so it runs beside ``make dev``'s."""
        return cls(project, default_buckets(project),
                   {f["name"]: free_port() for f in config.function_table()}, free_port(), **kwargs)

    def function_urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.function_ports.items()}

    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    def function_env(self, emulator_env: dict[str, str]) -> dict[str, str]:
        """The environment every function process of this stack gets."""
        return {
            **emulator_env,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PACS_UPLOADS_BUCKET": self.buckets["uploads"],
            "PACS_INSTANCES_BUCKET": self.buckets["instances"],
            "PACS_DERIVED_BUCKET": self.buckets["derived"],
            "PACS_HASH_KEY": f"local-only-key-{self.project}",
            # URL-signing key of this demo project, generated on first use (never committed).
            "PACS_SIGNING_KEY_FILE": str(config.STATE_DIR / "keys" / f"{self.project}-signer.json"),
            "PACS_VIEWER_ORIGIN": f"http://127.0.0.1:{config.emulator_ports().hosting}",
            **self.extra_env,
        }


def default_buckets(project: str) -> dict[str, str]:
    return {role: f"{project}-{role}" for role in ("uploads", "instances", "derived")}


def _request(method: str, url: str, body: dict | None = None, ok=(200, 201, 409)) -> None:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10).close()
    except urllib.error.HTTPError as err:
        if err.code not in ok:
            raise


def load_rules(project: str, emulator_env: dict[str, str]) -> None:
    """Load firestore.rules into the emulator for this project (picks up edits too)."""
    rules = (config.ROOT / "firestore.rules").read_text()
    _request("PUT", f"http://{emulator_env['FIRESTORE_EMULATOR_HOST']}/emulator/v1/projects/"
             f"{project}:securityRules", {"rules": {"files": [{"content": rules}]}})


def prepare(cfg: StackConfig, emulator_env: dict[str, str]) -> None:
    """Create the buckets and topics and load the rules (all idempotent)."""
    storage = emulator_env["STORAGE_EMULATOR_HOST"]
    for name in cfg.buckets.values():
        _request("POST", f"{storage}/storage/v1/b?project={cfg.project}", {"name": name})
    pubsub = emulator_env["PUBSUB_EMULATOR_HOST"]
    for topic in config.pubsub_topics():
        _request("PUT", f"http://{pubsub}/v1/projects/{cfg.project}/topics/{topic}", {})
    load_rules(cfg.project, emulator_env)


def start(cfg: StackConfig, emulator_env: dict[str, str], state_dir: Path,
          with_scheduler: bool = False) -> list[procs.Child]:
    """Start the functions and the router; return once every one answers."""
    prepare(cfg, emulator_env)
    logs = state_dir / "logs"
    base = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env = {**base, **cfg.function_env(emulator_env), "PYTHONPATH": str(FUNCTIONS_DIR),
           "PYTHONUNBUFFERED": "1", "THREADS": "8"}
    children = []
    for fn in config.function_table():
        signature = "http" if fn["trigger"]["type"] == "http" else "cloudevent"
        children.append(procs.spawn(f"{cfg.project}.{fn['name']}", [
            sys.executable, "-m", "functions_framework", "--target", fn["entry_point"],
            "--source", str(FUNCTIONS_DIR / fn["folder"] / "main.py"),
            "--signature-type", signature, "--host", "127.0.0.1",
            "--port", str(cfg.function_ports[fn["name"]]),
        ], env, logs, cwd=FUNCTIONS_DIR / fn["folder"]))
    router_env = {**base, **emulator_env, "PYTHONPATH": str(config.ROOT)}
    children.append(procs.spawn(f"{cfg.project}.router", [
        sys.executable, "-m", "localcloud.router", json.dumps(asdict(cfg)),
    ], router_env, logs, cwd=config.ROOT))
    if with_scheduler:
        children.append(procs.spawn(f"{cfg.project}.scheduler", [
            sys.executable, "-m", "localcloud.scheduler", "--project", cfg.project,
        ], router_env, logs, cwd=config.ROOT))
    urls = cfg.function_urls()
    for child, fn in zip(children, config.function_table(), strict=False):
        procs.wait_until(lambda u=urls[fn["name"]]: procs.http_answers(u + "/"), 60,
                         f"function {fn['name']}", child)
    router = next(c for c in children if c.name.endswith(".router"))
    procs.wait_until(lambda: procs.http_answers(cfg.router_url() + "/ready"), 60, "event router",
                     router)
    return children
