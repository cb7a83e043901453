"""Where the CLI sends requests: the local cloud's connection file, or, in production,
``PACS_API_URL`` and the Firebase web API key in ``PACS_FIREBASE_API_KEY``."""

from __future__ import annotations

import os

from localcloud import state


def _local() -> dict | None:
    return state.read()


def api_key() -> str:
    return os.environ.get("PACS_FIREBASE_API_KEY", "demo-local-key")


def identity_toolkit() -> str:
    local = _local()
    if local and not os.environ.get("PACS_API_URL"):
        return f"http://{local['env']['FIREBASE_AUTH_EMULATOR_HOST']}/identitytoolkit.googleapis.com"
    return "https://identitytoolkit.googleapis.com"


def secure_token() -> str:
    local = _local()
    if local and not os.environ.get("PACS_API_URL"):
        return f"http://{local['env']['FIREBASE_AUTH_EMULATOR_HOST']}/securetoken.googleapis.com"
    return "https://securetoken.googleapis.com"


def function_url(name: str) -> str:
    """Base URL of an HTTP function (``create-upload``, ``studies``, ...)."""
    if os.environ.get("PACS_API_URL"):
        return os.environ["PACS_API_URL"].rstrip("/") + "/" + name
    local = _local()
    if not local:
        raise RuntimeError("the local cloud is not running and PACS_API_URL is not set")
    return local["function_urls"][name]
