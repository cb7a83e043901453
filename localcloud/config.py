"""Where the local cloud's fixed facts live: ports (firebase.json's emulators section and
infra/functions.json), the function table, the schedule definition, the state folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("PACS_LOCALCLOUD_DIR", ROOT / ".localcloud"))
DEFAULT_PROJECT = "demo-pacs"
# fake-gcs-server publishes every bucket's notifications to this one topic; the router of
# each project's stack subscribes to it and keeps the events of its own buckets.
GCS_EVENTS_TOPIC = "gcs-events"
GCLOUD_PLATFORM = Path(os.environ.get("PACS_GCLOUD_PLATFORM", "/usr/lib/google-cloud-sdk/platform"))
FIRESTORE_JAR = GCLOUD_PLATFORM / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar"
PUBSUB_EMULATOR = GCLOUD_PLATFORM / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
FIREBASE_CLI = ROOT / "node_modules" / "firebase-tools" / "lib" / "bin" / "firebase.js"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass(frozen=True)
class EmulatorPorts:
    auth: int
    firestore: int
    pubsub: int
    storage: int
    hosting: int


def emulator_ports() -> EmulatorPorts:
    """The emulator ports, from firebase.json (the one place they are defined)."""
    emu = _load(ROOT / "firebase.json")["emulators"]
    return EmulatorPorts(
        auth=emu["auth"]["port"],
        firestore=emu["firestore"]["port"],
        pubsub=emu["pubsub"]["port"],
        storage=emu["storage"]["port"],
        hosting=emu["hosting"]["port"],
    )


def function_table() -> list[dict[str, Any]]:
    """The deployable functions (infra/functions.json), shared with the deploy step."""
    return _load(ROOT / "infra" / "functions.json")["functions"]


def router_port() -> int:
    return int(_load(ROOT / "infra" / "functions.json")["router_port"])


def schedule_definition() -> dict[str, Any]:
    """The one schedule definition (infra/schedules.json)."""
    return _load(ROOT / "infra" / "schedules.json")


def pubsub_topics() -> list[str]:
    """Every topic a function is triggered on, plus the scheduler's topics."""
    topics = {f["trigger"]["topic"] for f in function_table() if f["trigger"]["type"] == "pubsub"}
    topics |= {job["topic"] for job in schedule_definition()["jobs"]}
    return sorted(topics)
