"""The connection file ``make up`` writes and tools, tests and the CLI read."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from localcloud import config

STATE_FILE = config.STATE_DIR / "localcloud.json"
ENV_FILE = config.STATE_DIR / "env.sh"


def write(state: dict[str, Any], path: Path = STATE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)
    lines = [f"export {k}={shlex.quote(str(v))}" for k, v in state["env"].items()]
    (path.parent / "env.sh").write_text("\n".join(lines) + "\n")


def read(path: Path = STATE_FILE) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def clear(path: Path = STATE_FILE) -> None:
    for p in (path, path.parent / "env.sh"):
        p.unlink(missing_ok=True)
