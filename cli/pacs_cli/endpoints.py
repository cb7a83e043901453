"""Where the CLI sends requests.

Locally: the local cloud's connection file (``make up`` writes it; ``PACS_LOCALCLOUD_FILE``
names another, as tests do). In production: ``PACS_API_URL`` (the Hosting origin with its
``/api`` rewrites) and the Firebase web API key in ``PACS_FIREBASE_API_KEY``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from localcloud import state


def local() -> dict[str, Any] | None:
    """The local cloud's connection settings, unless a production URL is configured."""
    if os.environ.get("PACS_API_URL"):
        return None
    path = os.environ.get("PACS_LOCALCLOUD_FILE")
    if path:
        return json.loads(Path(path).read_text())
    return state.read()


def api_key() -> str:
    return os.environ.get("PACS_FIREBASE_API_KEY", "demo-local-key")


def identity_toolkit() -> str:
    cfg = local()
    if cfg:
        return f"http://{cfg['env']['FIREBASE_AUTH_EMULATOR_HOST']}/identitytoolkit.googleapis.com"
    return "https://identitytoolkit.googleapis.com"


def secure_token() -> str:
    cfg = local()
    if cfg:
        return f"http://{cfg['env']['FIREBASE_AUTH_EMULATOR_HOST']}/securetoken.googleapis.com"
    return "https://securetoken.googleapis.com"


def emulator_project() -> str | None:
    """The project to name in Auth emulator calls (it maps API keys to its default one)."""
    cfg = local()
    return cfg["project"] if cfg else None


# Where Firebase Hosting's rewrites (firebase.json) put each HTTP function.
HOSTING_PATHS = {"create-upload": "api/uploads", "studies": "api/studies",
                 "sign-link": "api/links", "privacy-requests": "api/privacy"}


def function_url(name: str) -> str:
    """Base URL of an HTTP function (``create-upload``, ``studies``, ...)."""
    if os.environ.get("PACS_API_URL"):
        return os.environ["PACS_API_URL"].rstrip("/") + "/" + HOSTING_PATHS[name]
    cfg = local()
    if not cfg:
        raise RuntimeError("the local cloud is not running and PACS_API_URL is not set")
    return cfg["function_urls"][name]


def dicomweb_url() -> str:
    """Base URL of the DICOMweb function for large transfers: its own URL
    (``PACS_DICOMWEB_URL``, e.g. ``https://europe-west1-<project>.cloudfunctions.net/dicomweb``)
    in production, since the Hosting rewrite cuts responses at 60 s; without it,
    ``PACS_API_URL``'s ``/dicomweb`` (fine for studies that arrive within 60 s)."""
    if os.environ.get("PACS_DICOMWEB_URL"):
        return os.environ["PACS_DICOMWEB_URL"]
    if os.environ.get("PACS_API_URL"):
        return os.environ["PACS_API_URL"].rstrip("/") + "/dicomweb"
    cfg = local()
    if not cfg:
        raise RuntimeError("the local cloud is not running and PACS_API_URL is not set")
    return cfg["function_urls"]["dicomweb"]
