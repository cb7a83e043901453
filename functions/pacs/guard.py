"""Refuse to run deployed while pointed at emulators.

firebase-admin accepts unsigned ID tokens whenever ``FIREBASE_AUTH_EMULATOR_HOST`` is set,
so a deployed function with that variable would let anyone in. Every entry point calls
:func:`assert_safe_environment` at import time, before serving anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class UnsafeEnvironment(RuntimeError):
    """Deployed (or on a non-demo project) while emulator variables are set."""


def assert_safe_environment(env: Mapping[str, str] | None = None) -> None:
    """Raise :class:`UnsafeEnvironment` when deployed with any ``*_EMULATOR_HOST`` set."""
    env = os.environ if env is None else env
    emulator_vars = sorted(k for k in env if k.endswith("_EMULATOR_HOST") and env[k])
    if not emulator_vars:
        return
    project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or ""
    deployed = bool(env.get("K_SERVICE")) or not project.startswith("demo-")
    if deployed:
        raise UnsafeEnvironment(
            "refusing to start: emulator variables "
            f"{', '.join(emulator_vars)} are set while running deployed "
            f"(K_SERVICE={env.get('K_SERVICE', '')!r}, project={project!r}); "
            "emulators accept unsigned tokens"
        )
