"""``pacs privacy profile|export|download|delete|rectify|restrict|consent|requests|receipt``:
the data-subject rights of the privacy policy (the ``privacy-requests`` function).

Export, download and delete are verified: they need a sign-in of the last few minutes. When
the server refuses with ``recent_sign_in_required``, the command asks for the password
again at a terminal and carries on; elsewhere it stops and says to ``pacs login`` first.
No command prints an export's download link: it is minted when the archive is downloaded.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from pacs_cli import api, endpoints, session
from pacs_cli.errors import CliError

FUNCTION = "privacy-requests"
FINAL = ("completed", "rejected")


def register(sub) -> None:
    privacy = sub.add_parser("privacy", help="your data-protection rights: export, delete, "
                             "rectify, restrict, consent, requests")
    psub = privacy.add_subparsers(dest="privacy_command", required=True)

    p = psub.add_parser("profile", help="show your profile (or create it with --create)")
    p.add_argument("--create", action="store_true", help="create the profile")
    p.add_argument("--adult", choices=("yes", "no"),
                   help="with --create: are you 18 or older? (no: an account without a "
                   "profile is deleted, on a recent sign-in; an existing profile is kept)")
    p.add_argument("--display-name", default=None)
    p.add_argument("--email", default=None)
    p.set_defaults(run=profile)

    p = psub.add_parser("export", help="an archive of all your data (DICOM files included)")
    p.add_argument("--wait", action="store_true", help="wait until the archive is ready")
    p.add_argument("--out", default=None, help="with --wait: download the archive to this file")
    p.add_argument("--timeout", type=float, default=1800)
    p.set_defaults(run=export)

    p = psub.add_parser("download", help="download a completed export's archive")
    p.add_argument("request_id")
    p.add_argument("--out", required=True, help="the file to write the archive to")
    p.set_defaults(run=download)

    p = psub.add_parser("delete", help="erase your account and every piece of your data")
    p.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    p.add_argument("--wait", action="store_true", help="wait for the receipt")
    p.add_argument("--timeout", type=float, default=1800)
    p.set_defaults(run=delete)

    p = psub.add_parser("rectify", help="correct your display name, contact email or "
                        "sign-in email")
    p.add_argument("--display-name", default=None)
    p.add_argument("--email", default=None, help="the contact email of your profile")
    p.add_argument("--sign-in-email", default=None,
                   help="the email you sign in with (a recent sign-in; a link sent to the "
                   "new address makes the change)")
    p.set_defaults(run=rectify)

    p = psub.add_parser("restrict", help="restrict (or object to) processing of your account "
                        "or one study: no links, shares or analytics; data kept")
    p.add_argument("--study", default=None, help="one study id (default: the whole account)")
    p.add_argument("--lift", action="store_true", help="lift the restriction")
    p.add_argument("--objection", action="store_true", help="record it as an objection")
    p.set_defaults(run=restrict)

    p = psub.add_parser("consent", help="show, grant or withdraw analytics consent")
    p.add_argument("action", nargs="?", choices=("show", "grant", "withdraw"), default="show")
    p.add_argument("--revoke-shares", action="store_true",
                   help="with withdraw: also revoke every live share link")
    p.set_defaults(run=consent)

    p = psub.add_parser("requests", help="your privacy requests and their status")
    p.add_argument("request_id", nargs="?", default=None)
    p.set_defaults(run=list_requests)

    p = psub.add_parser("receipt", help="an erasure receipt (no sign-in needed)")
    p.add_argument("receipt_id")
    p.set_defaults(run=receipt)


def _line(r: dict[str, Any]) -> str:
    reason = f" ({r['reason']})" if r.get("reason") else ""
    return (f"{r['id']}  {r['type']:<18} {r['status']:<11}{reason}  received {r['received_at']}"
            f"  due {r['due_at']}" + (f"  completed {r['completed_at']}"
                                     if r.get("completed_at") else ""))


def _wait(request_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        request = api.call(FUNCTION, "GET", f"requests/{request_id}")["request"]
        if request["status"] in FINAL:
            return request
        if time.monotonic() > deadline:
            raise CliError(f"request {request_id} still {request['status']} after {timeout} s",
                           code="timeout")
        time.sleep(1)


def _sign_in_again(why: str) -> None:
    """Ask for the password at the terminal and sign in again (a fresh ``auth_time``)."""
    try:
        email = json.loads(session.SESSION_FILE.read_text())["email"]
    except (OSError, ValueError, KeyError) as err:
        raise CliError("not signed in: run 'pacs login' first", code="not_signed_in") from err
    password = getpass.getpass(f"Password for {email} ({why} needs a recent sign-in): ")
    try:
        session.sign_in("accounts:signInWithPassword", email, password)
    except session.AuthFailed as err:
        raise CliError(str(err), code="sign_in_failed") from err


def _verified(call: Callable[[], Any], why: str, retry: str) -> Any:
    """Run a call that needs a recent sign-in. Refused for a stale one: at a terminal, sign
    in again and run it once more; elsewhere, stop and say how to go on (``retry``)."""
    try:
        return call()
    except CliError as err:
        if err.code != "recent_sign_in_required":
            raise
        if not sys.stdin.isatty():
            raise CliError(f"{why} needs a recent sign-in: run 'pacs login', then {retry}",
                           code="recent_sign_in_required") from err
    _sign_in_again(why)
    return call()


def _download_export(request_id: str, out: Path) -> dict[str, Any]:
    """Mint a short-lived link to the archive (verified) and download it to ``out``."""
    link = _verified(lambda: api.call(FUNCTION, "POST", f"requests/{request_id}/download"),
                     "downloading your export",
                     f"'pacs privacy download {request_id} --out {out}'")
    size = _download(link["download_url"], out)
    return {"path": str(out), "size": size, "sha256": link.get("sha256")}


def _download(url: str, out: Path) -> int:
    size = 0
    headers = {}
    if endpoints.local():
        # The local cloud's fake-gcs-server serves path-style downloads only to its default
        # public host; the URL (address, path, signature) is used as issued.
        probe = requests.head(url, timeout=60)
        if probe.status_code == 404:
            headers["Host"] = "storage.googleapis.com"
    with requests.get(url, stream=True, timeout=120, headers=headers) as resp:
        if resp.status_code != 200:
            raise CliError(f"download failed: HTTP {resp.status_code}", code="download_failed")
        tmp = out.with_name(out.name + ".part")
        with tmp.open("wb") as fh:
            for chunk in resp.iter_content(1024**2):
                fh.write(chunk)
                size += len(chunk)
        tmp.replace(out)
    return size


def profile(args) -> tuple[dict[str, Any], str]:
    if args.create:
        if args.adult is None:
            raise CliError("say --adult yes or --adult no (the service is for adults only)",
                           code="adult_required")
        body: dict[str, Any] = {"adult": args.adult == "yes"}
        if args.display_name is not None:
            body["display_name"] = args.display_name
        if args.email is not None:
            body["email"] = args.email
        result = api.call(FUNCTION, "POST", "profile", json=body)
        return result, "profile created" if result.get("created") else "profile exists"
    result = api.call(FUNCTION, "GET", "profile")
    p = result.get("profile")
    if not p:
        return result, "no profile yet: pacs privacy profile --create --adult yes"
    c = result["consent"]
    lines = [f"display name: {p.get('display_name') or '-'}", f"email: {p.get('email') or '-'}",
             f"18+ attested: {p.get('adult_attested')} at {p.get('adult_attested_at')}",
             f"restricted: {bool(p.get('restricted'))}",
             f"analytics consent: {c['analytics']}"
             + (" (needs renewal)" if c.get("needs_renewal") else "")]
    return result, "\n".join(lines)


def _download_hint(r: dict[str, Any]) -> str:
    until = (r.get("result") or {}).get("available_until")
    return (f"download: pacs privacy download {r['id']} --out FILE"
            + (f" (kept until {until})" if until else ""))


def export(args) -> tuple[dict[str, Any], str]:
    retry = "'pacs privacy export" + (" --wait" if args.wait else "") \
        + (f" --out {args.out}'" if args.out else "'")
    result = _verified(lambda: api.call(FUNCTION, "POST", "requests", json={"type": "export"}),
                       "an export", retry)
    request = result["request"]
    if not args.wait:
        return result, f"export requested: {request['id']} ({request['status']}); " \
                       f"'pacs privacy requests {request['id']}' shows when it is ready"
    request = _wait(request["id"], args.timeout)
    out = {"request": request}
    if request["status"] != "completed":
        return {**out, "ok": False}, _line(request)
    lines = [_line(request)]
    if args.out:
        out["downloaded"] = _download_export(request["id"], Path(args.out))
        lines.append(f"saved {out['downloaded']['size']} bytes to {args.out}")
    else:
        lines.append(_download_hint(request))
    return out, "\n".join(lines)


def download(args) -> tuple[dict[str, Any], str]:
    downloaded = _download_export(args.request_id, Path(args.out))
    return {"downloaded": downloaded}, f"saved {downloaded['size']} bytes to {args.out}"


def receipt_of(receipt_id: str) -> dict[str, Any]:
    url = endpoints.function_url(FUNCTION).rstrip("/") + f"/receipts/{receipt_id}"
    resp = requests.get(url, timeout=60)
    body = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") \
        else {}
    if not resp.ok:
        raise CliError(body.get("message") or f"HTTP {resp.status_code}",
                       code=body.get("error", f"http_{resp.status_code}"))
    return body["receipt"]


def _receipt_text(r: dict[str, Any]) -> str:
    lines = [f"receipt {r['receipt_id']}: {r['status']} (requested {r['requested_at']}, "
             f"completed {r.get('completed_at') or '-'})"]
    lines += [f"  {name}: {r['deleted'].get(name, 0)} deleted ({state})"
              for name, state in r["locations"].items()]
    lines.append(f"  backups and soft-deleted copies expire by {r.get('residual_copies_expire_by')}"
                 f"; logs by {r.get('logs_expire_by')}")
    lines += [f"  kept: {k['what']} ({k['legal_basis']}; {k['retention']})" for k in r["kept"]]
    return "\n".join(lines)


def delete(args) -> tuple[dict[str, Any], str]:
    if not args.yes:
        raise CliError("this erases your account and all your data for good: add --yes",
                       code="not_confirmed")
    result = _verified(lambda: api.call(FUNCTION, "POST", "requests", json={"type": "erasure"}),
                       "deleting your account", "'pacs privacy delete --yes'")
    request = result["request"]
    receipt_id = request.get("receipt_id")
    if not args.wait:
        return result, (f"erasure requested ({request['id']}); receipt {receipt_id}: "
                        f"'pacs privacy receipt {receipt_id}'")
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            r = receipt_of(receipt_id)
        except CliError:
            r = {"status": "pending"}
        if r.get("status") == "completed":
            return {"request": request, "receipt": r}, _receipt_text(r)
        if time.monotonic() > deadline:
            raise CliError(f"erasure not finished after {args.timeout} s; receipt {receipt_id}",
                           code="timeout")
        time.sleep(1)


def rectify(args) -> tuple[dict[str, Any], str]:
    body = {k: v for k, v in (("display_name", args.display_name), ("email", args.email))
            if v is not None}
    if args.sign_in_email is not None:
        if body:
            raise CliError("change the sign-in email on its own", code="one_change")
        result = _verified(lambda: api.call(FUNCTION, "POST", "profile/sign-in-email",
                                            json={"email": args.sign_in_email}),
                           "changing the sign-in email",
                           f"pacs privacy rectify --sign-in-email {args.sign_in_email}")
        return result, (f"A link was sent to {result['verification_sent_to']}: open it to make "
                        "it your sign-in email, then sign in with it (pacs login).")
    if not body:
        raise CliError("give --display-name, --email or --sign-in-email",
                       code="nothing_to_change")
    result = api.call(FUNCTION, "PATCH", "profile", json=body)
    changes = result.get("changes") or {}
    text = "\n".join(f"{k}: {c['from']!r} -> {c['to']!r}" for k, c in changes.items())
    return result, text or "nothing changed"


def restrict(args) -> tuple[dict[str, Any], str]:
    body: dict[str, Any] = {"restricted": not args.lift,
                            "type": "objection" if args.objection else "restriction"}
    if args.study:
        body["study_id"] = args.study
    result = api.call(FUNCTION, "POST", "restrict", json=body)
    scope = f"study {args.study}" if args.study else "account"
    state = "restricted" if result["restricted"] else "not restricted"
    return result, f"{scope}: {state}" + ("" if result.get("changed") else " (unchanged)")


def consent(args) -> tuple[dict[str, Any], str]:
    if args.action == "show":
        result = api.call(FUNCTION, "GET", "consent")
    else:
        body: dict[str, Any] = {"analytics": args.action == "grant"}
        if args.revoke_shares:
            body["revoke_shares"] = True
        result = api.call(FUNCTION, "POST", "consent", json=body)
    text = (f"analytics consent: {result['analytics']} (policy {result.get('policy_version')}, "
            f"current {result['current_policy_version']})"
            + (" - needs renewal" if result.get("needs_renewal") else ""))
    if result.get("shares_revoked"):
        text += f"\n{result['shares_revoked']} share links revoked"
    return result, text


def list_requests(args) -> tuple[dict[str, Any], str]:
    if args.request_id:
        result = api.call(FUNCTION, "GET", f"requests/{args.request_id}")
        r = result["request"]
        lines = [_line(r)]
        if r["type"] == "export" and r["status"] == "completed":
            expired = (r.get("result") or {}).get("expired")
            lines.append("the archive is no longer kept: request a new export" if expired
                         else _download_hint(r))
        return result, "\n".join(lines)
    result = api.call(FUNCTION, "GET", "requests")
    return result, "\n".join(_line(r) for r in result["requests"]) or "no requests"


def receipt(args) -> tuple[dict[str, Any], str]:
    r = receipt_of(args.receipt_id)
    return {"receipt": r}, _receipt_text(r)
