"""HTTP entry point ``sign_link``: viewer manifests, shares and the access history.

Owner routes (Firebase ID token, checked for revocation):
``POST /manifest``, ``POST /series``, ``POST /shares``, ``GET /shares``,
``DELETE /shares/{share_id}``, ``POST /shares/preview``, ``GET /access``.
Token-holder routes (no sign-in; the share token in the JSON body):
``POST /share/manifest``, ``POST /share/series``.
Routes match the end of the path, so a Hosting rewrite prefix (``/api/links/...``) works.
"""

import functools

import functions_framework
from pacs import guard, http, log_events
from pacs.auth import verify_caller
from pacs.clients import default_clients
from pacs.errors import BadRequest, NotFound
from pacs.links import access_log, copy_preview, manifests, shares, signing

guard.assert_safe_environment()
log_events.route_warnings()


@functools.lru_cache(maxsize=1)
def _signer() -> signing.UrlSigner:
    return signing.signer_from_settings(default_clients().settings)


def _route(method: str, path: str):
    parts = [p for p in path.split("/") if p]
    for start in range(len(parts) + 1):
        tail = parts[start:]
        if tail == ["manifest"]:
            return "manifest", None
        if tail == ["series"]:
            return "series", None
        if tail == ["access"]:
            return "access", None
        if tail == ["shares"]:
            return ("shares_list" if method == "GET" else "shares_create"), None
        if tail == ["shares", "preview"]:
            return "shares_preview", None
        if len(tail) == 2 and tail[0] == "shares":
            return "shares_revoke", tail[1]
        if tail == ["share", "manifest"]:
            return "share_manifest", None
        if tail == ["share", "series"]:
            return "share_series", None
    raise NotFound("no such endpoint", code="no_endpoint")


METHODS = {"manifest": "POST", "series": "POST", "access": "GET", "shares_list": "GET",
           "shares_create": "POST", "shares_revoke": "DELETE", "share_manifest": "POST",
           "share_series": "POST", "shares_preview": "POST"}
PUBLIC = {"share_manifest", "share_series"}


def _body(request) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object", code="bad_json")
    return body


def _limit(raw: str | None) -> int:
    try:
        return int(raw) if raw else 50
    except ValueError:
        raise BadRequest("limit must be a number", code="bad_limit") from None


@functions_framework.http
def sign_link(request):
    """Dispatch one request (see the module docstring for the routes)."""

    def call():
        route, arg = _route(request.method, request.path)
        if request.method != METHODS[route]:
            raise BadRequest(f"use {METHODS[route]}", code="method_not_allowed")
        clients = default_clients()
        client = access_log.client_info(request.headers, request.remote_addr,
                                        clients.settings.forwarded_hops)
        if route in PUBLIC:
            minter = manifests.Minter(clients, _signer())
            handler = shares.share_manifest if route == "share_manifest" else shares.share_series
            return handler(minter, _body(request), client)
        uid = verify_caller(request.headers, clients.firebase_app).uid
        if route == "access":
            return access_log.list_records(clients.firestore, uid, _limit(request.args.get("limit")),
                                           request.args.get("page_token") or None)
        if route.startswith("shares_"):  # no URLs signed: no signer needed
            minter = manifests.Minter(clients, None)
            if route == "shares_list":
                return shares.list_shares(minter, uid)
            if route == "shares_revoke":
                return shares.revoke_share(minter, uid, arg, client)
            if route == "shares_preview":
                return copy_preview.preview_share(minter, uid, _body(request))
            return shares.create_share(minter, uid, _body(request), client)
        minter = manifests.Minter(clients, _signer())
        if route == "manifest":
            return manifests.owner_manifest(minter, uid, _body(request), client)
        return manifests.owner_series(minter, uid, _body(request), client)

    return http.handle("sign_link", call)
