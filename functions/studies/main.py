"""HTTP entry point ``studies``: the caller's studies (Firebase ID token, checked for
revocation).

``POST /search {"name", "patient_id", "date", "date_from", "date_to", "modality", "accession",
"keyword", "limit", "cursor"}`` → ``{"studies": [...], "next_cursor": ...}`` (see
:mod:`pacs.studies.search`): filters travel in the body, since request URLs are written to
request logs (docs/privacy.md). ``GET /?limit=&cursor=`` lists without filters; a filter in
the URL is refused (400 ``filters_in_url``) so no client keeps sending names in URLs;
``GET /{study_id}`` → ``{"study": {...}, "series": [...]}``;
``DELETE /{study_id}`` → ``{"deletion": {...}}``, 200 when completed, 202 when it waits for an
upload still being processed and finishes by itself (see :mod:`pacs.studies.deletion`).
Routes match the end of the path, so a Hosting rewrite prefix (``/api/studies/...``) works.
"""

import functions_framework
from pacs import guard, http, log_events
from pacs.auth import verify_caller
from pacs.clients import default_clients
from pacs.errors import BadRequest
from pacs.studies import deletion, search

guard.assert_safe_environment()
log_events.route_warnings()

PAGING = ("cursor", "limit")
SEARCH = "search"


def _route(path: str) -> str | None:
    """None for the collection (``/``, ``/studies``), ``search`` for ``/search``, else the
    study id (last path part; study ids are keyed hashes, never ``search``)."""
    parts = [p for p in path.split("/") if p]
    return None if not parts or parts[-1] == "studies" else parts[-1]


def _search_body(request) -> dict:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("send the search as a JSON object", code="bad_body")
    return body


@functions_framework.http
def studies(request):
    """Search, get or delete (see the module docstring)."""

    def call():
        study_id = _route(request.path)
        allowed = (("GET",) if study_id is None else ("POST",) if study_id == SEARCH
                   else ("GET", "DELETE"))
        if request.method not in allowed:
            raise BadRequest("use " + " or ".join(allowed), code="method_not_allowed")
        if study_id is None and set(request.args) - set(PAGING):
            # Checked before the token: a name in a URL is refused, not looked up.
            raise BadRequest("send search filters in the body of POST /search, not in the "
                             "URL", code="filters_in_url")
        clients = default_clients()
        uid = verify_caller(request.headers, clients.firebase_app).uid
        if study_id in (None, SEARCH):
            args = (request.args.to_dict(flat=True) if study_id is None
                    else _search_body(request))
            filters = {k: v for k, v in args.items() if k not in PAGING}
            return search.search_studies(clients.firestore, uid, filters, args.get("cursor"),
                                         args.get("limit"))
        if request.method == "GET":
            return search.get_study(clients.firestore, uid, study_id)
        record = deletion.delete_study(clients, uid, study_id)
        # 202: accepted, finishing by itself (an upload of the study is still processed).
        return {"deletion": record}, 200 if record["status"] == "completed" else 202

    return http.handle("studies", call)
