"""Rectifying the sign-in email (the Auth account's, not the profile's contact email).

``POST /profile/sign-in-email {email}`` needs a recent sign-in (as erasure and export do).
The change itself is Firebase Auth's verify-and-change flow: Identity Toolkit's
``accounts:sendOobCode`` with ``VERIFY_AND_CHANGE_EMAIL`` and the caller's own ID token
emails a link to the new address; the sign-in email changes only when that link is opened
(so nobody can move an account to an address they do not hold), and Firebase tells the old
address. The request is a ``rectification`` request; the profile keeps
``pending_sign_in_email`` (from, to, since) and its history the step. When the user next
reads the profile with a token carrying the new email, the change is recorded as done
(``sign_in_email`` ``{from, to}`` in the history) and the pending note cleared.

Identity Toolkit is reached with the project's Firebase web API key (public configuration:
``PACS_FIREBASE_API_KEY``, else the key Firebase Hosting publishes for the site's web app at
``{viewer origin}/__/firebase/init.json``; neither: 503 ``not_configured``, nothing sent), or
the Auth emulator's endpoint locally.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pacs.auth import Caller
from pacs.clients import Clients
from pacs.errors import BadRequest, Forbidden, PacsError, TransientError
from pacs.privacy import profile
from pacs.privacy import requests as privacy_requests

Sender = Callable[[str, str], None]
LOCAL_API_KEY = "demo-local-key"


class TooManyAttempts(PacsError):
    """Identity Toolkit refuses for now (its own rate limit)."""

    code = "too_many_attempts"
    http_status = 429


class EmailTaken(PacsError):
    """Another account signs in with the new address."""

    code = "email_taken"
    http_status = 409


def published_api_key(origin: str) -> str:
    """The web API key Firebase Hosting publishes for the site's app
    (``{origin}/__/firebase/init.json``); "" when it cannot be read."""
    import requests

    try:
        resp = requests.get(f"{origin.rstrip('/')}/__/firebase/init.json", timeout=10)
        return str(resp.json().get("apiKey") or "") if resp.ok else ""
    except (requests.RequestException, ValueError, AttributeError):
        return ""


def identity_toolkit_sender(settings: Any) -> Sender:
    """``send(id_token, new_email)`` through Identity Toolkit (the emulator when set)."""
    import requests

    emulator = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
    # The emulator maps every API key to its default project: name ours in the path, which
    # it accepts from an "owner" (emulator-only credential); the idToken still says who.
    headers = {"Authorization": "Bearer owner"} if emulator else {}
    url = (f"http://{emulator}/identitytoolkit.googleapis.com/v1/projects/"
           f"{settings.project_id}/accounts:sendOobCode" if emulator
           else "https://identitytoolkit.googleapis.com/v1/accounts:sendOobCode")
    known = settings.firebase_api_key or (LOCAL_API_KEY if emulator else "")
    found: list[str] = []

    def api_key() -> str:
        if not known and not found and settings.viewer_origin:
            key = published_api_key(settings.viewer_origin)
            if key:
                found.append(key)  # a failure is asked again next time
        return known or (found[0] if found else "")

    def send(id_token: str, new_email: str) -> None:
        key = api_key()
        if not key:
            raise TransientError("changing the sign-in email is not configured (no Firebase "
                                 "web API key)", code="not_configured")
        resp = requests.post(url, params={"key": key}, headers=headers, timeout=30,
                             json={"requestType": "VERIFY_AND_CHANGE_EMAIL",
                                   "idToken": id_token, "newEmail": new_email})
        if resp.status_code == 200:
            return
        try:
            message = str(resp.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = ""
        raise _refusal(message, resp.status_code)

    return send


def _refusal(message: str, status: int) -> PacsError:
    code = message.split(" ")[0].split(":")[0]
    if code == "EMAIL_EXISTS":
        return EmailTaken("another account signs in with that email")
    if code in ("INVALID_EMAIL", "INVALID_NEW_EMAIL"):
        return BadRequest("that is not an email address", code="bad_email")
    if code in ("CREDENTIAL_TOO_OLD_LOGIN_AGAIN", "TOKEN_EXPIRED", "INVALID_ID_TOKEN"):
        return Forbidden("sign in again (a recent sign-in is needed to change the sign-in "
                         "email)", code="recent_sign_in_required")
    if code == "TOO_MANY_ATTEMPTS_TRY_LATER":
        return TooManyAttempts("too many attempts: try again later")
    return TransientError(f"the sign-in service did not answer (HTTP {status})",
                          code="auth_unavailable")


def request_change(clients: Clients, caller: Caller, id_token: str, body: dict[str, Any],
                   now: datetime, send: Sender) -> dict[str, Any]:
    """Send the verification link to the new address; record the request and the step."""
    fs, settings = clients.firestore, clients.settings
    profile.require(fs, caller.uid)
    privacy_requests.require_recent_sign_in(caller, settings, now, "changing the sign-in email")
    new = profile.normal_email(body.get("email"))
    if set(body) - {"email"}:
        raise BadRequest("send email only", code="bad_fields")
    if new.lower() == (caller.email or "").lower():
        raise BadRequest("that is already your sign-in email", code="nothing_to_change")

    def apply() -> dict[str, Any]:
        send(id_token, new)
        pending = {"from": caller.email, "to": new, "since": now}
        batch = fs.batch()
        batch.update(profile.profile_ref(fs, caller.uid),
                     {"pending_sign_in_email": pending, "updated_at": now})
        batch.set(profile.history_ref(fs, caller.uid),
                  {"owner": caller.uid, "kind": "sign_in_email_verification_sent",
                   "changes": {"sign_in_email": {"from": caller.email, "to": new}}, "at": now})
        batch.commit()
        return {"verification_sent_to": new,
                "next": "open the link sent to the new address; sign in with it afterwards"}

    return privacy_requests.run_sync(fs, caller.uid, "rectification", settings, now, apply)


def record_if_changed(firestore: Any, caller: Caller, doc: dict[str, Any] | None,
                      now: datetime) -> dict[str, Any] | None:
    """On a profile read: the pending change is recorded, once, when the token shows it done
    (a transaction: two reads at once record it once)."""
    from google.cloud import firestore as gfs

    pending = (doc or {}).get("pending_sign_in_email")
    if not pending or (caller.email or "").lower() != str(pending.get("to", "")).lower():
        return doc
    ref = profile.profile_ref(firestore, caller.uid)

    @gfs.transactional
    def apply(transaction: Any) -> None:
        snap = ref.get(transaction=transaction)
        current = (snap.to_dict() or {}).get("pending_sign_in_email") if snap.exists else None
        if current != pending:
            return  # recorded meanwhile, or another change requested
        transaction.update(ref, {"pending_sign_in_email": gfs.DELETE_FIELD, "updated_at": now})
        transaction.set(profile.history_ref(firestore, caller.uid), {
            "owner": caller.uid, "kind": "rectified", "at": now,
            "changes": {"sign_in_email": {"from": pending.get("from"), "to": caller.email}}})

    apply(firestore.transaction())
    return profile.load(firestore, caller.uid)
