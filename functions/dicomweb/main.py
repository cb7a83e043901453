"""HTTP entry point ``dicomweb``: DICOMweb (PS3.18) over the caller's own studies
(``Authorization: Bearer`` with a Firebase ID token, checked for revocation, or an API key;
or a share's ``X-Share-Token`` and ``X-Share-View``: :mod:`pacs.keys.access`). ``OPTIONS``
answers CORS preflights for the Hosting origins (:mod:`pacs.keys.cors`).

``GET /studies``, ``/series``, ``/instances`` (QIDO-RS searches), ``GET /studies/{study}/series``,
``GET /studies/{study}/series/{series}/instances`` → ``application/dicom+json``;
``GET /studies/{study}/series/{series}/instances/{instance}`` (WADO-RS) →
``multipart/related; type="application/dicom"``, streamed. See :mod:`pacs.dicomweb` and
docs/dicomweb.md. Routes match from the ``studies`` segment, so the Hosting prefix
(``/dicomweb/studies...``) works. Query strings hold patient names: they are never logged.
"""

from datetime import UTC, datetime

import functions_framework
from pacs import guard, http, log_events
from pacs.clients import default_clients
from pacs.dicomweb import (
    attributes,
    copy_view,
    downloads,
    qido,
    qido_root,
    removal,
    service_url,
    stow,
    wado,
    wado_rs,
)
from pacs.errors import BadRequest, Forbidden, NotFound, PacsError
from pacs.keys import access, cors
from pacs.links import access_log
from pacs.settings import get_settings

guard.assert_safe_environment()
log_events.route_warnings()

FUNCTION = "dicomweb"
RETRIEVES = ("study", "series_retrieve", "instance", "wado")
SEARCHES = {"studies": qido.search_studies, "all_series": qido_root.search_all_series,
            "all_instances": qido_root.search_all_instances}
DICOM_JSON_HEADERS = {"Content-Type": attributes.MEDIA_TYPE, "Cache-Control": "no-store",
                      "X-Content-Type-Options": "nosniff"}


class NotImplementedYet(PacsError):
    """A DICOMweb resource of issue 15 that this slice does not serve yet."""

    code = "not_implemented"
    http_status = 501


def _route(path: str) -> tuple[str, list[str], str]:
    """(resource, path parameters, base path) of a request path."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[-2] == "downloads":  # a single-use study ZIP link
        return "download", [parts[-1]], ""
    if "studies" not in parts:
        if parts and parts[-1] in ("series", "instances"):  # QIDO-RS of all series/instances
            return f"all_{parts[-1]}", [], ("/" + "/".join(parts[:-1])) if parts[:-1] else ""
        raise NotFound("no such DICOMweb resource", code="not_found")
    at = parts.index("studies")
    base = "/" + "/".join(parts[:at]) if at else ""
    rest = parts[at + 1:]
    shapes = {0: "studies", 1: "study", 2: "series", 3: "series_retrieve", 4: "instances",
              5: "instance"}
    resource = shapes.get(len(rest))
    if resource and all(rest[i] == n for i, n in ((1, "series"), (3, "instances"))
                        if i < len(rest)):
        return resource, [rest[i] for i in (0, 2, 4) if i < len(rest)], base
    wado_route = wado_rs.match(rest)  # metadata, frames, bulkdata, rendered, thumbnail
    if wado_route is not None:
        return "wado", wado_route.uids, base
    raise NotFound("no such DICOMweb resource", code="not_found")


def _service_base(request, base_path: str, forwarded: bool = True) -> str:
    """The service's base URL as the caller reached it (:mod:`pacs.dicomweb.service_url`)."""
    return service_url.service_base(request.headers, request.scheme, request.host,
                                    request.environ.get("SERVER_PORT"), base_path, forwarded)


def _credential(request, clients) -> access.Credential:
    """Who the request is (ID token, API key or share), checked before anything is read."""
    client = access_log.client_info(request.headers, request.remote_addr,
                                    clients.settings.forwarded_hops)
    return access.resolve(request.headers, clients, client, datetime.now(UTC))


def _dicom_json(body, truncated: bool = False):
    import flask

    headers = dict(DICOM_JSON_HEADERS)
    if truncated:
        headers["Warning"] = qido.TRUNCATED_WARNING
    return flask.Response(flask.json.dumps(body), status=200, headers=headers)


def _store(request):
    """STOW-RS: ``POST /studies`` or ``/studies/{study}`` (:mod:`pacs.dicomweb.stow`)."""
    import flask

    parts = [p for p in request.path.split("/") if p]
    if "studies" not in parts or len(parts) - parts.index("studies") > 2:
        raise BadRequest("POST is STOW-RS: /studies or /studies/{study}",
                         code="method_not_allowed")
    at = parts.index("studies")
    if (request.content_length or 0) > stow.MAX_REQUEST_BYTES:
        raise http.BodyTooLarge(stow.TOO_LARGE)  # refused unread, before anything else
    # Any later read (ours, or the framework's after the answer) stops past the limit.
    request.max_content_length = stow.MAX_REQUEST_BYTES + 1
    clients = default_clients()
    credential = _credential(request, clients)
    credential.require_write("STOW-RS")  # an API key needs the read-write scope
    answer = stow.store(clients, credential.uid, stow.StowRequest(
        request.headers.get("Content-Type"), request.content_length, request.stream,
        parts[at + 1] if len(parts) > at + 1 else None,
        _service_base(request, "/" + "/".join(parts[:at]) if at else ""),
        request.headers.get("Accept")))
    # Streamed, so the framework does not read what is left of the body (an epilogue).
    return flask.Response(iter([flask.json.dumps(answer.body)]), status=answer.status,
                          headers=dict(DICOM_JSON_HEADERS))


def _send(body: wado.Retrieved):
    import flask

    return flask.Response(body.chunks, status=200, headers={
        "Content-Type": body.content_type, "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", **body.headers})


def _download_link(request):
    """``POST /studies/{study}/download-link``: a single-use, two-minute link to the study
    as a ZIP, for the signed-in owner's browser (:mod:`pacs.dicomweb.downloads`)."""
    parts = [p for p in request.path.split("/") if p]
    if len(parts) < 3 or parts[-3] != "studies":
        raise NotFound("no such DICOMweb resource", code="not_found")
    clients = default_clients()
    credential = _credential(request, clients)
    if credential.kind != "id_token":
        raise Forbidden("download links are for the signed-in owner; API keys retrieve "
                        "the study directly (Accept: application/zip)", code="forbidden")
    base = _service_base(request, "/" + "/".join(parts[:-3]) if parts[:-3] else "",
                         forwarded=False)
    link = downloads.create_link(clients, credential.uid, parts[-2],
                                 downloads.direct_base(clients, base))
    return link, 201


def _download(request, token: str):
    """``GET /downloads/{token}``: the link's study ZIP (the token is the credential)."""
    if request.method != "GET":
        raise BadRequest("use GET", code="method_not_allowed")
    clients = default_clients()
    opened = downloads.redeem(clients, token)
    return _send(wado.retrieve(clients, opened.uid, opened.study_uid, None, None,
                               accept=wado.ZIP))


@functions_framework.http
def dicomweb(request):
    """QIDO-RS searches and the WADO-RS instance retrieve (see the module docstring)."""

    def call():
        if request.method == "POST" and request.path.rstrip("/").endswith("/download-link"):
            return _download_link(request)
        if request.method == "POST":
            return _store(request)
        resource, uids, base = _route(request.path)
        if resource == "download":
            return _download(request, uids[0])
        if request.method != "GET" and (resource, request.method) != ("study", "DELETE"):
            raise BadRequest("use GET (DELETE on a study)", code="method_not_allowed")
        clients = default_clients()
        credential = _credential(request, clients)
        uid = credential.uid
        fs, key = clients.firestore, clients.settings.hash_key
        items = list(request.args.items(multi=True))
        if credential.copy is not None:  # a de-identified share: its copy, never the study
            import flask

            reply = copy_view.serve(clients, credential, copy_view.Request(
                resource, uids, items, request.headers, _service_base(request, base),
                request.method, request.path))
            return flask.Response(reply.chunks, status=reply.status, headers=reply.headers)
        if resource in SEARCHES:
            scoped = credential.study_search(items)  # a share: its one study only
            return _dicom_json([]) if scoped is None else _dicom_json(
                *SEARCHES[resource](fs, key, uid, scoped, _service_base(request, base)))
        if not credential.allows_study(uids[0]):  # like another user's study
            if resource in RETRIEVES:
                raise NotFound("no such study, series or instance", code="not_found")
            return _dicom_json([])
        if resource == "wado":
            import flask

            reply = wado_rs.serve(clients, uid, wado_rs.match_path(request.path), items=items,
                                  headers=request.headers, base=_service_base(request, base))
            return flask.Response(reply.chunks, status=reply.status, headers=reply.headers)
        if resource == "series":
            return _dicom_json(qido.search_series(fs, key, uid, uids[0], items,
                                                  _service_base(request, base)))
        if resource == "instances":
            return _dicom_json(qido.search_instances(fs, key, uid, uids[0], uids[1], items,
                                                     _service_base(request, base)))
        if request.method == "DELETE":
            credential.require_write("delete a study")
            return removal.delete_study(clients, uid, uids[0])
        if items:
            raise BadRequest("a retrieve takes no query parameters", code="unsupported_query")
        body = wado.retrieve(clients, uid, *uids, *[None] * (3 - len(uids)),
                             accept=request.headers.get("Accept"))
        import flask

        return flask.Response(body.chunks, status=200, headers={
            "Content-Type": body.content_type, "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", **body.headers})

    settings = get_settings()
    if request.method == "OPTIONS":
        return cors.preflight(request.headers, settings)
    # STOW-RS reads its (multipart) body itself, streaming and bounded (pacs.dicomweb.stow).
    limit = None if request.method == "POST" else http.JSON_BODY_MAX_BYTES
    return cors.add_headers(http.handle(FUNCTION, call, max_body_bytes=limit), request.headers,
                            settings)
