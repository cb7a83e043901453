"""The test side of the local cloud: a stack under its own ``demo-test-<uuid>`` project on
the emulator layer (reused when ``make up``/``make dev`` runs one, started otherwise), with
helpers for users, tokens, rule-enforcing Firestore REST reads and log scanning."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from localcloud import config, emulators, prereqs, procs, stack, state


@dataclass
class User:
    uid: str
    email: str
    password: str
    id_token: str
    refresh_token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.id_token}"}


@dataclass
class LocalCloud:
    project: str
    env: dict[str, str]
    cfg: stack.StackConfig
    log_dir: Path
    children: list[procs.Child] = field(default_factory=list)
    _clients: Any = None

    @property
    def urls(self) -> dict[str, str]:
        return self.cfg.function_urls()

    @property
    def buckets(self) -> dict[str, str]:
        return self.cfg.buckets

    def settings(self):
        from pacs.settings import Settings

        return Settings.from_env(self.env)

    def clients(self):
        """Admin clients of the test project (the same builder the functions use)."""
        if self._clients is None:
            from pacs.clients import build_clients

            self._clients = build_clients(self.settings())
        return self._clients

    # --- Auth emulator -------------------------------------------------------------
    def _auth_url(self, path: str) -> str:
        return f"http://{self.env['FIREBASE_AUTH_EMULATOR_HOST']}/{path}"

    def create_user(self, email: str | None = None, password: str = "correct-horse-9",
                    profile: bool = False) -> User:
        """Sign up a uuid-named user in this test project and sign in; with ``profile``, also
        confirm 18+ as sign-up on the website and ``pacs signup`` do (uploads need it)."""
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.test"
        self._identity("accounts:signUp", {"email": email, "password": password})
        user = self.sign_in(email, password)
        if profile:
            self.confirm_adult(user)
        return user

    def confirm_adult(self, user: User) -> None:
        """Create the user's profile with the 18+ attestation (idempotent)."""
        resp = requests.post(f"{self.urls['privacy-requests']}/profile", json={"adult": True},
                             headers={"Authorization": f"Bearer {user.id_token}"}, timeout=30)
        assert resp.status_code in (200, 201), resp.text

    def sign_in(self, email: str, password: str) -> User:
        body = self._identity("accounts:signInWithPassword",
                              {"email": email, "password": password, "returnSecureToken": True})
        return User(body["localId"], email, password, body["idToken"], body["refreshToken"])

    def _identity(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        # The emulator maps API keys to its default project; an owner request may name
        # another project (targetProjectId), which keeps test users apart from make dev's.
        resp = requests.post(
            self._auth_url(f"identitytoolkit.googleapis.com/v1/{method}"),
            params={"key": "demo-local-key"}, json={**body, "targetProjectId": self.project},
            headers={"Authorization": "Bearer owner"}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    # --- Firestore -----------------------------------------------------------------
    def firestore_rest(self, path: str, token: str | None) -> requests.Response:
        """GET a document through the emulator's REST API as a client: rules apply."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = (f"http://{self.env['FIRESTORE_EMULATOR_HOST']}/v1/projects/{self.project}"
               f"/databases/(default)/documents/{path}")
        return requests.get(url, headers=headers, timeout=10)

    def firestore_query(self, parent: str, structured_query: dict, token: str | None
                        ) -> requests.Response:
        """Run a structured query as a client (rules apply)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base = (f"http://{self.env['FIRESTORE_EMULATOR_HOST']}/v1/projects/{self.project}"
                f"/databases/(default)/documents")
        url = f"{base}/{parent}:runQuery" if parent else f"{base}:runQuery"
        return requests.post(url, json={"structuredQuery": structured_query}, headers=headers,
                             timeout=10)

    def clear_firestore(self) -> None:
        url = (f"http://{self.env['FIRESTORE_EMULATOR_HOST']}/emulator/v1/projects/"
               f"{self.project}/databases/(default)/documents")
        requests.delete(url, timeout=30).raise_for_status()

    # --- Router and logs -----------------------------------------------------------
    def set_deliveries(self, count: int) -> None:
        requests.post(self.cfg.router_url(), json={"deliveries": count}, timeout=5).raise_for_status()

    def log_lines(self, function: str) -> list[dict[str, Any]]:
        path = self.log_dir / f"{self.project}.{function}.log"
        lines = []
        for raw in path.read_text(errors="replace").splitlines() if path.exists() else []:
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def cli_env(self, home: Path) -> dict[str, str]:
        """Environment for running the ``pacs`` CLI against this test stack."""
        home.mkdir(parents=True, exist_ok=True)
        connection = home / "localcloud.json"
        connection.write_text(json.dumps({
            "project": self.project, "env": self.env, "function_urls": self.urls,
            "router_url": self.cfg.router_url()}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
        env.update(PACS_LOCALCLOUD_FILE=str(connection),
                   PACS_SESSION_FILE=str(home / "session.json"),
                   PACS_UPLOAD_SESSIONS=str(home / "uploads.json"))
        return env

    def all_log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll until ``predicate`` returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def start_emulators_if_needed(tmp_root: Path) -> tuple[dict[str, str], list[procs.Child]]:
    """Reuse a running emulator layer (make up / make dev), else start one for the session."""
    procs.tie_children_to_this_process()
    running = state.read()
    if running and all(emulators.answers(running["env"]).values()):
        return running["env"], []
    ports = config.emulator_ports()
    env = emulators.emulator_env(ports, config.DEFAULT_PROJECT)
    if all(emulators.answers(env).values()):
        return env, []
    prereqs.check()
    layer = emulators.start(tmp_root)
    return layer.env, layer.children


def start_test_cloud(tmp_root: Path, **stack_kwargs) -> LocalCloud:
    emulator_env, owned = start_emulators_if_needed(tmp_root)
    project = f"demo-test-{uuid.uuid4().hex[:10]}"
    cfg = stack.StackConfig.ephemeral(project, **stack_kwargs)
    for key, value in emulator_env.items():
        os.environ[key] = value
    children = stack.start(cfg, emulator_env, tmp_root)
    cloud = LocalCloud(project, {**cfg.function_env(emulator_env)}, cfg, tmp_root / "logs",
                       owned + children)
    return cloud


def stop_test_cloud(cloud: LocalCloud) -> None:
    procs.stop_groups([c.pid for c in cloud.children])
    delete_storage_subscription(cloud)
    # The session's URL-signing key (generated on first use) dies with its project.
    key_file = cloud.env.get("PACS_SIGNING_KEY_FILE")
    if key_file:
        Path(key_file).unlink(missing_ok=True)


def delete_storage_subscription(cloud: LocalCloud) -> None:
    """Delete the stopped stack's subscription to the storage-events topic, which every
    stack shares (one fake-gcs publishes for all of them): left behind, it would keep a
    copy of every later event of every other stack in the Pub/Sub emulator, one more per
    stack a session or bench started (16 after one afternoon's benches)."""
    host = cloud.env.get("PUBSUB_EMULATOR_HOST")
    if not host:
        return
    from localcloud.router import storage_subscription

    name = storage_subscription(cloud.project)
    try:
        requests.delete(f"http://{host}/v1/{name}", timeout=10)
    except requests.RequestException:
        pass  # the emulator is gone too: nothing is left behind
