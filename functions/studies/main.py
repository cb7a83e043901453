"""HTTP entry point ``studies``: the caller's studies (Firebase ID token, checked for
revocation).

``GET /?name=&patient_id=&date=&date_from=&date_to=&modality=&accession=&keyword=&limit=&cursor=``
→ ``{"studies": [...], "next_cursor": ...}`` (see :mod:`pacs.studies.search`);
``GET /{study_id}`` → ``{"study": {...}, "series": [...]}``;
``DELETE /{study_id}`` → ``{"deletion": {...}}``, 200 when completed, 202 when it waits for an
upload still being processed and finishes by itself (see :mod:`pacs.studies.deletion`).
Routes match the end of the path, so a Hosting rewrite prefix (``/api/studies/...``) works.
"""

import functions_framework
from pacs import guard, http
from pacs.auth import verify_caller
from pacs.clients import default_clients
from pacs.errors import BadRequest
from pacs.studies import deletion, search

guard.assert_safe_environment()

PAGING = ("cursor", "limit")


def _route(path: str) -> str | None:
    """None for the collection (``/``, ``/studies``), else the study id (last path part)."""
    parts = [p for p in path.split("/") if p]
    return None if not parts or parts[-1] == "studies" else parts[-1]


@functions_framework.http
def studies(request):
    """Search, get or delete (see the module docstring)."""

    def call():
        study_id = _route(request.path)
        allowed = ("GET",) if study_id is None else ("GET", "DELETE")
        if request.method not in allowed:
            raise BadRequest("use " + " or ".join(allowed), code="method_not_allowed")
        clients = default_clients()
        uid = verify_caller(request.headers, clients.firebase_app).uid
        if study_id is None:
            args = request.args.to_dict(flat=True)
            filters = {k: v for k, v in args.items() if k not in PAGING}
            return search.search_studies(clients.firestore, uid, filters, args.get("cursor"),
                                         args.get("limit"))
        if request.method == "GET":
            return search.get_study(clients.firestore, uid, study_id)
        record = deletion.delete_study(clients, uid, study_id)
        # 202: accepted, finishing by itself (an upload of the study is still processed).
        return {"deletion": record}, 200 if record["status"] == "completed" else 202

    return http.handle("studies", call)
