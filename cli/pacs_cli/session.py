"""Sign-in through the Firebase Auth REST API (the Auth emulator locally) and the stored
session, refreshed with the refresh token when the ID token is near expiry."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from pacs_cli import endpoints

SESSION_FILE = Path(os.environ.get("PACS_SESSION_FILE", Path.home() / ".config" / "pacs" / "session.json"))


class AuthFailed(Exception):
    pass


def _save(data: dict[str, Any]) -> None:
    """Write the session (its tokens) to a new file created 0600, whatever the umask, then
    move it into place: the tokens are never in a file others may read, not even briefly."""
    SESSION_FILE.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=SESSION_FILE.parent, prefix=".session-", suffix=".tmp")
    try:  # mkstemp creates the file with O_EXCL and mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(data))
        os.replace(tmp, SESSION_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sign_in(endpoint: str, email: str, password: str) -> dict[str, Any]:
    """Sign up or sign in; keep the session for the next commands."""
    base = endpoints.identity_toolkit()
    body = {"email": email, "password": password, "returnSecureToken": True}
    headers = {}
    project = endpoints.emulator_project()
    if project:
        # Emulator only: name the project explicitly (owner requests may), since the
        # emulator maps every API key to its default project.
        body["targetProjectId"] = project
        headers["Authorization"] = "Bearer owner"
    resp = requests.post(f"{base}/v1/{endpoint}", params={"key": endpoints.api_key()},
                         json=body, headers=headers, timeout=30)
    if resp.status_code != 200:
        try:
            message = resp.json().get("error", {}).get("message", "")
        except ValueError:
            message = f"HTTP {resp.status_code}"
        raise AuthFailed(f"sign-in failed: {message}")
    body = resp.json()
    if "idToken" not in body:  # an owner (emulator) sign-up creates the user only
        return sign_in("accounts:signInWithPassword", email, password)
    data = {"uid": body["localId"], "email": body.get("email", email),
            "id_token": body["idToken"], "refresh_token": body["refreshToken"],
            "expires_at": time.time() + int(body.get("expiresIn", 3600))}
    _save(data)
    return data


def id_token(min_seconds: int = 120) -> str:
    """A valid ID token of the stored session, refreshed when it has less than
    ``min_seconds`` left (an ID token lives an hour)."""
    try:
        data = json.loads(SESSION_FILE.read_text())
    except (OSError, ValueError) as err:
        raise AuthFailed("not signed in: run 'pacs login' first") from err
    if data["expires_at"] - time.time() < min_seconds:
        resp = requests.post(f"{endpoints.secure_token()}/v1/token",
                             params={"key": endpoints.api_key()},
                             data={"grant_type": "refresh_token",
                                   "refresh_token": data["refresh_token"]}, timeout=30)
        if resp.status_code != 200:
            raise AuthFailed("session expired: run 'pacs login' again")
        body = resp.json()
        data.update(id_token=body["id_token"], refresh_token=body["refresh_token"],
                    expires_at=time.time() + int(body.get("expires_in", 3600)))
        _save(data)
    return data["id_token"]


def current_uid() -> str:
    """The uid of the stored session."""
    try:
        return json.loads(SESSION_FILE.read_text())["uid"]
    except (OSError, ValueError, KeyError) as err:
        raise AuthFailed("not signed in: run 'pacs login' first") from err
