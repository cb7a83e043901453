"""``pacs-admin``: find an account by email, start an erasure with a recorded reason, list
open and overdue data-subject requests. Every use writes an audit record.

Against a project: ``pacs-admin --project ID ...`` with the operator's Google credentials
(``gcloud auth application-default login``); the operator is the credentials' email, the
hash key is read from Secret Manager (``pacs-hash-key``) with them. Against the local cloud
(no ``--project``): the emulators of ``make up`` (or ``PACS_LOCALCLOUD_FILE``), and the
operator names themself with ``--operator`` (an emulator has no Google identity).
No end-user token is accepted or used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The domain code the functions deploy (functions/pacs), run here as it is in the repository.
FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
if str(FUNCTIONS) not in sys.path:
    sys.path.insert(0, str(FUNCTIONS))
HASH_KEY_SECRET = "pacs-hash-key"  # deploy/iam.py HASH_KEY_SECRET
SCOPES = ["https://www.googleapis.com/auth/cloud-platform", "openid",
          "https://www.googleapis.com/auth/userinfo.email"]


class AdminError(Exception):
    """A refusal printed as ``pacs-admin: ...`` (exit 2)."""


def _local_env() -> dict[str, str]:
    from localcloud import state

    path = os.environ.get("PACS_LOCALCLOUD_FILE")
    cfg = json.loads(Path(path).read_text()) if path else state.read()
    if not cfg:
        raise AdminError("no local cloud is running (make up), and no --project was given")
    return {**cfg["env"], "GOOGLE_CLOUD_PROJECT": cfg["project"]}


def google_operator() -> tuple[Any, str]:
    """The operator's Application Default Credentials and their email (fails closed)."""
    import google.auth
    import google.auth.exceptions
    from google.auth.transport.requests import AuthorizedSession, Request

    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
        credentials.refresh(Request())
    except google.auth.exceptions.GoogleAuthError as err:
        raise AdminError("no Google credentials: run `gcloud auth application-default "
                         f"login` ({type(err).__name__})") from None
    email = getattr(credentials, "service_account_email", None)
    if not email or "@" not in email:
        info = AuthorizedSession(credentials).get(
            "https://oauth2.googleapis.com/tokeninfo",
            params={"access_token": credentials.token}, timeout=30).json()
        email = info.get("email")
    if not email:
        raise AdminError("the Google credentials carry no email: cannot record who acts")
    return credentials, email


def _hash_key(credentials: Any, project: str) -> str:
    import base64

    from google.auth.transport.requests import AuthorizedSession

    url = (f"https://secretmanager.googleapis.com/v1/projects/{project}/secrets/"
           f"{HASH_KEY_SECRET}/versions/latest:access")
    resp = AuthorizedSession(credentials).get(url, timeout=30)
    if resp.status_code != 200:
        raise AdminError(f"cannot read the secret {HASH_KEY_SECRET} (HTTP {resp.status_code})")
    return base64.b64decode(resp.json()["payload"]["data"]).decode()


def connect(args: argparse.Namespace) -> tuple[Any, Any]:
    """(clients, operator) for the project or the local cloud; settings are read once, after
    the environment is complete."""
    if args.project:
        credentials, email = google_operator()
        if args.operator and args.operator != email:
            raise AdminError("--operator is for the local cloud; on a project the operator "
                             "is the Google account")
        os.environ["GOOGLE_CLOUD_PROJECT"] = args.project
        os.environ.setdefault("PACS_HASH_KEY", _hash_key(credentials, args.project))
        name = email
    else:
        if not args.operator:
            raise AdminError("on the local cloud, name yourself with --operator")
        os.environ.update(_local_env())
        name = args.operator
    from pacs import log_events
    from pacs.clients import build_clients
    from pacs.privacy.operators import Operator
    from pacs.settings import get_settings

    log_events.write_to(sys.stderr)  # stdout holds the answer (--json)
    return build_clients(get_settings()), Operator(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacs-admin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", help="the Google Cloud project (default: the local cloud)")
    parser.add_argument("--operator", help="who you are (local cloud only)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    find = sub.add_parser("find", help="find the account that signs in with an email")
    find.add_argument("email")
    erase = sub.add_parser("erase", help="start the erasure of an account")
    erase.add_argument("uid")
    erase.add_argument("--reason", required=True, choices=("user_request", "minor"))
    erase.add_argument("--note", required=True, help="why: the ticket or report")
    reqs = sub.add_parser("requests", help="list open data-subject requests")
    reqs.add_argument("--overdue", action="store_true", help="only those past their due date")
    return parser


def run(args: argparse.Namespace) -> Any:
    from pacs.privacy import operators

    clients, operator = connect(args)
    now = datetime.now(UTC)
    if args.command == "find":
        return operators.find_account(clients, operator, args.email, now)
    if args.command == "erase":
        return operators.start_erasure(clients, operator, args.uid, args.reason, args.note, now)
    return operators.open_requests(clients, operator, now, overdue_only=args.overdue)


def _human(result: Any) -> str:
    rows = result if isinstance(result, list) else [result]
    return "\n".join("  ".join(f"{k}={v}" for k, v in row.items()) for row in rows) or "none"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except AdminError as err:
        print(f"pacs-admin: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        from pacs.errors import PacsError

        if not isinstance(err, PacsError):
            raise
        print(f"pacs-admin: {err} ({err.code})", file=sys.stderr)  # a refusal, with its reason
        return 1
    print(json.dumps(result, default=str) if args.json else _human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
