"""HTTP entry point ``dicomweb``: DICOMweb (PS3.18) over the caller's own studies
(``Authorization: Bearer <Firebase ID token>``, checked for revocation).

``GET /studies`` (QIDO-RS study search), ``GET /studies/{study}/series``,
``GET /studies/{study}/series/{series}/instances`` → ``application/dicom+json``;
``GET /studies/{study}/series/{series}/instances/{instance}`` (WADO-RS) →
``multipart/related; type="application/dicom"``, streamed. See :mod:`pacs.dicomweb` and
docs/dicomweb.md. Routes match from the ``studies`` segment, so the Hosting prefix
(``/dicomweb/studies...``) works. Query strings hold patient names: they are never logged.
"""

import functions_framework
from pacs import guard, http
from pacs.auth import verify_caller
from pacs.clients import default_clients
from pacs.dicomweb import attributes, qido, removal, wado
from pacs.errors import BadRequest, NotFound, PacsError

guard.assert_safe_environment()

FUNCTION = "dicomweb"
RETRIEVES = ("study", "series_retrieve", "instance")
DICOM_JSON_HEADERS = {"Content-Type": attributes.MEDIA_TYPE, "Cache-Control": "no-store",
                      "X-Content-Type-Options": "nosniff"}


class NotImplementedYet(PacsError):
    """A DICOMweb resource of issue 15 that this slice does not serve yet."""

    code = "not_implemented"
    http_status = 501


def _route(path: str) -> tuple[str, list[str], str]:
    """(resource, path parameters, base path) of a request path."""
    parts = [p for p in path.split("/") if p]
    if "studies" not in parts:
        if parts and parts[-1] in ("series", "instances"):
            raise NotImplementedYet(f"/{parts[-1]} at the root is not implemented yet; "
                                    "use /studies/{study}/series/... (docs/dicomweb.md)")
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
    if rest and rest[-1] in ("metadata", "frames", "rendered", "thumbnail", "bulkdata"):
        raise NotImplementedYet("metadata, frames, rendered and "
                                "thumbnail are not implemented yet (docs/dicomweb.md)")
    raise NotFound("no such DICOMweb resource", code="not_found")


def _service_base(request, base_path: str) -> str:
    """The service's base URL as the caller reached it (through Hosting or directly)."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}{base_path}"


def _dicom_json(body, truncated: bool = False):
    import flask

    headers = dict(DICOM_JSON_HEADERS)
    if truncated:
        headers["Warning"] = qido.TRUNCATED_WARNING
    return flask.Response(flask.json.dumps(body), status=200, headers=headers)


@functions_framework.http
def dicomweb(request):
    """QIDO-RS searches and the WADO-RS instance retrieve (see the module docstring)."""

    def call():
        resource, uids, base = _route(request.path)
        if request.method != "GET" and (resource, request.method) != ("study", "DELETE"):
            raise BadRequest("use GET (DELETE on a study)", code="method_not_allowed")
        clients = default_clients()
        uid = verify_caller(request.headers, clients.firebase_app).uid
        fs, key = clients.firestore, clients.settings.hash_key
        items = list(request.args.items(multi=True))
        if resource == "studies":
            return _dicom_json(*qido.search_studies(fs, key, uid, items))
        if resource == "series":
            return _dicom_json(qido.search_series(fs, key, uid, uids[0], items))
        if resource == "instances":
            return _dicom_json(qido.search_instances(fs, key, uid, uids[0], uids[1], items,
                                                     _service_base(request, base)))
        if request.method == "DELETE":
            return removal.delete_study(clients, uid, uids[0])
        if items:
            raise BadRequest("a retrieve takes no query parameters", code="unsupported_query")
        body = wado.retrieve(clients, uid, *uids, *[None] * (3 - len(uids)),
                             accept=request.headers.get("Accept"))
        import flask

        return flask.Response(body.chunks, status=200, headers={
            "Content-Type": body.content_type, "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", **body.headers})

    return http.handle(FUNCTION, call)
