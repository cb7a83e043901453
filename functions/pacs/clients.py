"""Cloud clients built from settings. Entry points build them once per process and pass
them into domain functions; nothing in the domain modules constructs its own client."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

from pacs.settings import Settings, get_settings


@dataclass
class Clients:
    """The cloud clients a domain function may need."""

    firestore: Any
    storage: Any
    publisher: Any
    firebase_app: Any
    settings: Settings


class HasClients:
    """``firestore`` and ``settings`` shortcuts for the dataclasses that carry ``clients``
    into domain code (an erasure subject, a study being deleted, a retention job)."""

    clients: Clients

    @property
    def firestore(self) -> Any:
        return self.clients.firestore

    @property
    def settings(self) -> Settings:
        return self.clients.settings


def _anonymous_if_emulated(var: str) -> Any:
    if os.environ.get(var):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    return None


def build_clients(settings: Settings) -> Clients:
    """Build real clients; the ``*_EMULATOR_HOST`` variables point them at the emulators."""
    import firebase_admin
    from google.cloud import firestore, pubsub_v1, storage

    storage_client = storage.Client(
        project=settings.project_id, credentials=_anonymous_if_emulated("STORAGE_EMULATOR_HOST")
    )
    # Settings are read once: without this, requests re-reads the environment for proxy and
    # CA-bundle variables on every Storage call (~10 % of an object upload's CPU). Functions
    # reach Storage directly, never through a proxy.
    storage_client._http.trust_env = False
    firestore_client = firestore.Client(project=settings.project_id)
    publisher = pubsub_v1.PublisherClient()
    app_name = f"pacs-{settings.project_id}"
    try:
        app = firebase_admin.get_app(app_name)
    except ValueError:
        credential = None
        if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"):
            from firebase_admin import credentials

            class _EmulatorCredential(credentials.Base):  # no ADC lookups against emulators
                def get_credential(self):  # noqa: D401
                    from google.auth.credentials import AnonymousCredentials

                    return AnonymousCredentials()

            credential = _EmulatorCredential()
        app = firebase_admin.initialize_app(
            credential, {"projectId": settings.project_id}, name=app_name
        )
    return Clients(firestore_client, storage_client, publisher, app, settings)


_first_build = threading.Lock()


def default_clients() -> Clients:
    """Process-wide clients for entry points (built on first request, not at import). Built
    once under a lock: the first events arrive together on several threads, and two builds
    at once collide in ``firebase_admin.initialize_app`` (a 500 and a redelivery each)."""
    with _first_build:
        return _build_default_clients()


@functools.lru_cache(maxsize=1)
def _build_default_clients() -> Clients:
    return build_clients(get_settings())
