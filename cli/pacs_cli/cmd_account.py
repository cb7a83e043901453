"""``pacs status``, ``pacs signup``, ``pacs login``."""

from __future__ import annotations

from typing import Any

from pacs_cli import api, session
from pacs_cli.errors import CliError


def register(sub) -> None:
    status_parser = sub.add_parser("status", help="each local cloud service and whether it answers")
    status_parser.set_defaults(run=status)
    for name, handler in (("signup", signup), ("login", login)):
        p = sub.add_parser(name, help=f"{name} with email and password")
        p.add_argument("--email", required=True)
        p.add_argument("--password", required=True)
        if name == "signup":
            p.add_argument("--adult", choices=("yes", "no"), required=True,
                           help="confirm that you are 18 or older (the service is for adults only)")
        p.set_defaults(run=handler)


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
    """Create the account and its profile with the 18+ attestation, as the website does.
    ``--adult no`` creates nothing: no account is made for someone under 18."""
    if args.adult != "yes":
        raise CliError("the service is for adults only: no account was created", code="under_18")
    result, text = _auth(args, "accounts:signUp")
    created = api.call("privacy-requests", "POST", "profile", json={"adult": True})
    result["profile_created"] = bool(created.get("created"))
    return result, text + " (18+ confirmed)"


def login(args) -> tuple[dict[str, Any], str]:
    return _auth(args, "accounts:signInWithPassword")
