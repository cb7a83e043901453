"""Data-subject rights: the HTTP endpoint ``privacy_requests`` and the job runner
``run_privacy_job`` (Pub/Sub ``privacy-jobs``). Domain logic: :mod:`pacs.privacy` (``requests``,
``jobs``, ``profile``, ``consent``, ``export``, ``erasure``).

Routes (Firebase ID token, checked for revocation, unless marked public):

``GET /profile``, ``POST /profile {adult, display_name?, email?}`` (18+ attestation),
``PATCH /profile {display_name?, email?}`` (rectification); ``POST /profile/sign-in-email
{email}`` (verified: a link to the new address changes the sign-in email);
``GET /requests``, ``GET /requests/{id}``, ``POST /requests {type: export|erasure}``
(verified: sign-in within ``recent_signin_seconds``); ``POST /requests/{id}/download`` (a
short-lived link to a completed export's archive; verified too);
``POST /restrict {restricted, type?: restriction|objection, study_id?}``;
``GET /consent``, ``POST /consent {analytics, revoke_shares?}``;
``POST /analytics {event, study_id?}``;
``GET /receipts/{receipt_id}`` (public: the erasure receipt, after the account is gone);
``GET /keys``, ``POST /keys {name, scope, expires_in_days?}`` (verified), ``DELETE
/keys/{key_id}``: API keys (:mod:`pacs.keys.api_keys`).
Routes match the end of the path, so a Hosting rewrite prefix (``/api/privacy/...``) works.
"""

import functools

import functions_framework
from pacs import guard, http, log_events
from pacs.auth import bearer_token, verify_caller
from pacs.clients import default_clients
from pacs.errors import BadRequest, Forbidden, NotFound
from pacs.keys import api_keys
from pacs.links import access_log, signing
from pacs.privacy import consent, erasure, export, jobs, profile, sign_in_email
from pacs.privacy.requests import get_request, list_requests, run_sync, utc_now

guard.assert_safe_environment()
log_events.route_warnings()

ROUTES = {
    ("profile",): {"GET": "profile_get", "POST": "profile_create", "PATCH": "rectify"},
    ("profile", "sign-in-email"): {"POST": "sign_in_email"},
    ("requests",): {"GET": "requests_list", "POST": "requests_submit"},
    ("restrict",): {"POST": "restrict"},
    ("consent",): {"GET": "consent_get", "POST": "consent_set"},
    ("analytics",): {"POST": "analytics"},
    ("keys",): {"GET": "keys_list", "POST": "keys_create"},
}
ITEM_ROUTES = {"requests": {"GET": "request_get"}, "receipts": {"GET": "receipt"},
               "keys": {"DELETE": "keys_revoke"}}
# ``/{collection}/{id}/{action}``.
ACTION_ROUTES = {("requests", "download"): {"POST": "request_download"}}
# Routes that add or change data: refused once an erasure of the account has started.
WRITES = {"profile_create", "rectify", "sign_in_email", "restrict", "consent_set", "analytics",
          "keys_create"}


def _route(method: str, path: str) -> tuple[str, str | None]:
    parts = [p for p in path.split("/") if p]
    for start in range(len(parts) + 1):
        tail = tuple(parts[start:])
        methods, arg = ROUTES.get(tail), None
        if methods is None and len(tail) == 2 and tail[0] in ITEM_ROUTES:
            methods, arg = ITEM_ROUTES[tail[0]], tail[1]
        if methods is None and len(tail) == 3 and (tail[0], tail[2]) in ACTION_ROUTES:
            methods, arg = ACTION_ROUTES[(tail[0], tail[2])], tail[1]
        if methods is not None:
            if method not in methods:
                raise BadRequest("use " + " or ".join(sorted(methods)), code="method_not_allowed")
            return methods[method], arg
    raise NotFound("no such endpoint", code="no_endpoint")


def _body(request) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object", code="bad_json")
    return body


@functools.lru_cache(maxsize=1)
def _email_sender() -> sign_in_email.Sender:
    return sign_in_email.identity_toolkit_sender(default_clients().settings)


@functools.lru_cache(maxsize=1)
def _signer() -> signing.UrlSigner:
    return signing.signer_from_settings(default_clients().settings)


def _restrict(clients, uid, body, now):
    restricted = body.get("restricted", True)
    kind = body.get("type", "restriction")
    study_id = body.get("study_id")
    if not isinstance(restricted, bool) or kind not in profile.RESTRICTION_KINDS:
        raise BadRequest("send restricted: true or false, and type: restriction or objection",
                         code="bad_restriction")
    if study_id is not None and not (isinstance(study_id, str) and len(study_id) == 32
                                     and all(c in "0123456789abcdef" for c in study_id)):
        raise NotFound("no such study", code="not_found")
    request_type = kind if restricted else "restriction_lifted"
    return run_sync(clients.firestore, uid, request_type, clients.settings, now,
                    lambda: profile.set_restriction(clients.firestore, uid, study_id,
                                                    restricted, kind, now))


def _dispatch(request, route, arg):
    clients = default_clients()
    fs, settings = clients.firestore, clients.settings
    now = utc_now()
    if route == "receipt":
        return erasure.get_receipt(fs, arg)
    caller = verify_caller(request.headers, clients.firebase_app)
    uid = caller.uid
    if route in WRITES and erasure.pending(fs, settings, uid):
        raise Forbidden("your account is being erased", code="erasure_in_progress")
    if route == "profile_get":
        doc = sign_in_email.record_if_changed(fs, caller, profile.load(fs, uid), now)
        return {"profile": profile.public(doc),
                "consent": consent.state(doc, settings.policy_version),
                "history": profile.history(fs, uid) if doc else []}
    if route == "sign_in_email":
        return sign_in_email.request_change(clients, caller, bearer_token(request.headers),
                                            _body(request), now, _email_sender())
    if route == "profile_create":
        return jobs.attest_age(clients, caller, _body(request), now)
    if route == "rectify":
        body = _body(request)
        profile.require(fs, uid)
        return run_sync(fs, uid, "rectification", settings, now,
                        lambda: profile.rectify(fs, uid, body, now))
    if route == "requests_list":
        return list_requests(fs, uid, now)
    if route == "request_get":
        return get_request(fs, uid, arg, now)
    if route == "request_download":
        return export.issue_download(clients, caller, arg, _signer(), now)
    if route == "requests_submit":
        return jobs.submit(clients, caller, _body(request), now)
    if route == "restrict":
        return _restrict(clients, uid, _body(request), now)
    if route == "keys_list":
        return api_keys.list_keys(fs, uid, now)
    if route == "keys_create":
        return api_keys.create_key(clients, caller, _body(request), now), 201
    if route == "keys_revoke":
        return api_keys.revoke_key(fs, uid, arg, now)
    if route == "consent_get":
        doc = profile.load(fs, uid)
        return {**consent.state(doc, settings.policy_version),
                "ledger": consent.ledger(fs, uid) if doc else []}
    if route == "consent_set":
        client = access_log.client_info(request.headers, request.remote_addr,
                                        settings.forwarded_hops)
        return consent.record(fs, uid, _body(request), settings.policy_version, client, now)
    return consent.accept_event(fs, uid, _body(request), settings.policy_version, now)


@functions_framework.http
def privacy_requests(request):
    """Dispatch one request (see the module docstring for the routes)."""

    def call():
        route, arg = _route(request.method, request.path)
        return _dispatch(request, route, arg)

    return http.handle("privacy_requests", call)


@functions_framework.cloud_event
def run_privacy_job(event):
    """A ``privacy-jobs`` message: run the export or erasure it names (retried until done)."""
    http.run_pubsub_json("run_privacy_job", event, jobs.run_job)
