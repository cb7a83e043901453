"""``pacs keys create|list|revoke``: API keys for tools that cannot sign in (an Orthanc
peer, a gateway, a script), presented to DICOMweb as ``Authorization: Bearer <key>``; and
``pacs token``: a fresh ID token of the signed-in session for quick scripts."""

from __future__ import annotations

import time
from typing import Any

from pacs_cli import api, session
from pacs_cli.cmd_privacy import _verified
from pacs_cli.errors import CliError

FUNCTION = "privacy-requests"
# ``pacs token`` refreshes a token with less than this left, so it lasts at least 50 min.
TOKEN_MIN_SECONDS = 50 * 60


def register(sub) -> None:
    keys = sub.add_parser("keys", help="API keys for DICOMweb tools (create, list, revoke)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    p = keys_sub.add_parser("create", help="create a key (shown once; needs a recent sign-in)")
    p.add_argument("--name", required=True, help="what the key is for, e.g. 'Orthanc peer'")
    p.add_argument("--scope", choices=("read", "read-write"), default="read")
    p.add_argument("--days", type=int, default=90, help="lifetime in days (1 to 365)")
    p.set_defaults(run=create)
    p = keys_sub.add_parser("list", help="your keys: scope, state, created, last used")
    p.set_defaults(run=list_keys)
    p = keys_sub.add_parser("revoke", help="revoke a key (refused from the next request on)")
    p.add_argument("key_id")
    p.set_defaults(run=revoke)

    p = sub.add_parser("token", help="print a fresh ID token (valid at least 50 minutes)")
    p.set_defaults(run=token)


def create(args) -> tuple[dict[str, Any], str]:
    body = {"name": args.name, "scope": args.scope, "expires_in_days": args.days}
    created = _verified(lambda: api.call(FUNCTION, "POST", "keys", json=body),
                        "creating an API key", "'pacs keys create' again")
    human = (f"{created['key']}\n"
             f"key {created['key_id']} '{created['name']}' ({created['scope']}) until "
             f"{created['expires_at']}\n(shown this once: store it now; send it as "
             "'Authorization: Bearer <key>')")
    return created, human


def list_keys(args) -> tuple[dict[str, Any], str]:
    listed = api.call(FUNCTION, "GET", "keys")
    lines = [f"{k['key_id']}  {k['status']:<9} {k['scope']:<10} {k['name']}  created "
             f"{k['created_at']}  until {k['expires_at']}  last used {k['last_used_at'] or '-'}"
             for k in listed["keys"]]
    if listed.get("suspended"):
        lines.append("(keys are suspended while processing of your account is restricted)")
    return listed, "\n".join(lines) or "no API keys"


def revoke(args) -> tuple[dict[str, Any], str]:
    result = api.call(FUNCTION, "DELETE", f"keys/{args.key_id}")
    return result, f"key {result['key_id']} revoked"


def token(args) -> tuple[dict[str, Any], str]:
    try:
        value = session.id_token(min_seconds=TOKEN_MIN_SECONDS)
    except session.AuthFailed as err:
        raise CliError(str(err), code="not_signed_in") from err
    return {"ok": True, "id_token": value, "at": int(time.time())}, value
