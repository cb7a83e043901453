"""The CLI's commands. Each returns (JSON-able result, human text) or raises CliError."""

from __future__ import annotations

from typing import Any

from pacs_cli import session


class CliError(Exception):
    def __init__(self, message: str, code: str = "error", exit_code: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


def status(args) -> tuple[dict[str, Any], str]:
    from localcloud import launcher

    services = launcher.status()
    if not services:
        raise CliError("the local cloud is not running (start it with 'make up' or 'make dev')",
                       code="not_running")
    lines = [f"{'up  ' if ok else 'DOWN'}  {name}" for name, ok in services.items()]
    return {"ok": all(services.values()), "services": services}, "\n".join(lines)


def _auth(args, endpoint: str) -> tuple[dict[str, Any], str]:
    try:
        result = session.sign_in(endpoint, args.email, args.password)
    except session.AuthFailed as err:
        raise CliError(str(err), code="auth_failed") from err
    return ({"ok": True, "uid": result["uid"], "email": result["email"]},
            f"signed in as {result['email']} ({result['uid']})")


def signup(args) -> tuple[dict[str, Any], str]:
    return _auth(args, "accounts:signUp")


def login(args) -> tuple[dict[str, Any], str]:
    return _auth(args, "accounts:signInWithPassword")
