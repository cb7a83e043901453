"""Refuse to run deployed while pointed at emulators, or without the secrets.

firebase-admin accepts unsigned ID tokens whenever ``FIREBASE_AUTH_EMULATOR_HOST`` is set,
so a deployed function with that variable would let anyone in. Without ``PACS_HASH_KEY``
the settings would have no key for keyed ids, header seals and share view strings. Every
entry point calls :func:`assert_safe_environment` at import time, before serving anything.

Deployed means ``K_SERVICE`` is set, or the project id does not start with ``demo-``
(:func:`pacs.settings.is_deployed`, the one decision).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pacs import settings


class UnsafeEnvironment(RuntimeError):
    """Deployed (or on a non-demo project) with emulator variables or without a secret."""


def assert_safe_environment(env: Mapping[str, str] | None = None) -> None:
    """Raise :class:`UnsafeEnvironment` when deployed with any ``*_EMULATOR_HOST`` set, or
    without a ``PACS_HASH_KEY`` of at least 32 bytes (the message names the setting)."""
    env = os.environ if env is None else env
    if not settings.is_deployed(env):
        return
    project = settings.project_of(env)
    emulator_vars = sorted(k for k in env if k.endswith("_EMULATOR_HOST") and env[k])
    if emulator_vars:
        raise UnsafeEnvironment(
            "refusing to start: emulator variables "
            f"{', '.join(emulator_vars)} are set while running deployed "
            f"(K_SERVICE={env.get('K_SERVICE', '')!r}, project={project!r}); "
            "emulators accept unsigned tokens"
        )
    try:
        settings.hash_key_from_env(env, project)
    except settings.MissingSecret as err:
        raise UnsafeEnvironment(
            f"refusing to start: {err}; K_SERVICE={env.get('K_SERVICE', '')!r}, "
            f"project={project!r}") from None
