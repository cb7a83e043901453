"""``pacs studies [list|get|delete] ...``: search the signed-in user's studies, show one,
delete one.

``pacs studies [--name N] [--patient-id P] [--date D | --from D --to D] [--modality M]
[--accession A] [--keyword K] [--limit N] [--cursor C] [--json]`` lists a page (newest
first; pass ``next_cursor`` back with ``--cursor`` for the next one), ``pacs studies get ID``
shows one study with its series, ``pacs studies delete ID`` deletes it everywhere.
"""

from __future__ import annotations

from typing import Any

from pacs_cli import api
from pacs_cli.errors import CliError

ACTIONS = ("list", "get", "delete")
# CLI option → search filter of the studies function (sent in the body of POST /search:
# request URLs are written to request logs, and names and IDs stay out of them).
FILTERS = {"name": "name", "patient_id": "patient_id", "date": "date", "date_from": "date_from",
           "date_to": "date_to", "modality": "modality", "accession": "accession",
           "keyword": "keyword"}


def register(sub) -> None:
    p = sub.add_parser("studies", help="search your studies; get or delete one",
                       description="pacs studies [list] [filters] | get ID | delete ID")
    p.add_argument("action", nargs="?", choices=ACTIONS, default="list",
                   help="list (default), get or delete")
    p.add_argument("study_id", nargs="?", help="the study id (get, delete)")
    p.add_argument("--name", help="patient name prefix (any name part; case and accents ignored)")
    p.add_argument("--patient-id", dest="patient_id", help="exact patient ID")
    p.add_argument("--date", help="study date YYYYMMDD or YYYY-MM-DD (or a range FROM-TO)")
    p.add_argument("--from", dest="date_from", help="first study date (inclusive)")
    p.add_argument("--to", dest="date_to", help="last study date (inclusive)")
    p.add_argument("--modality", help="studies with a series of this modality (CT, MR, ...)")
    p.add_argument("--accession", help="exact accession number")
    p.add_argument("--keyword", help="word(s) of the study description")
    p.add_argument("--limit", type=int, help="studies per page (default 50, at most 200)")
    p.add_argument("--cursor", help="next_cursor of the previous page")
    p.set_defaults(run=studies)


def _filters(args) -> dict[str, str]:
    return {param: getattr(args, attr) for attr, param in FILTERS.items()
            if getattr(args, attr) not in (None, "")}


def studies(args) -> tuple[dict[str, Any], str]:
    filters = _filters(args)
    if args.action == "list":
        if args.study_id:
            raise CliError("a study id goes with 'get' or 'delete'", code="bad_arguments")
        if args.date and (args.date_from or args.date_to):
            raise CliError("give either --date or --from/--to", code="bad_arguments")
        return list_studies(filters, args.limit, args.cursor)
    if not args.study_id:
        raise CliError(f"pacs studies {args.action} needs a study id", code="bad_arguments")
    if filters or args.limit is not None or args.cursor:
        raise CliError(f"filters go with 'pacs studies' (list), not '{args.action}'",
                       code="bad_arguments")
    if args.action == "get":
        return get_study(args.study_id)
    return delete_study(args.study_id)


def _count_text(study: dict[str, Any]) -> str:
    return f"{study.get('series_count') or 0} series, {study.get('instance_count') or 0} images"


def list_studies(filters: dict[str, str], limit: int | None,
                 cursor: str | None) -> tuple[dict[str, Any], str]:
    params: dict[str, Any] = dict(filters)
    if limit is not None:
        params["limit"] = limit
    if cursor:
        params["cursor"] = cursor
    body = api.call("studies", "POST", "search", json=params)
    rows = body.get("studies", [])
    lines = [f"{s.get('StudyDate') or '--------'}  {','.join(s.get('modalities') or []) or '-':<8} "
             f"{s.get('PatientName') or '?':<28} {s.get('StudyDescription') or '':<28} "
             f"{_count_text(s):<22} {s['id']}" for s in rows]
    if not rows:
        lines.append("no studies match")
    if body.get("next_cursor"):
        lines.append(f"more: pacs studies ... --cursor {body['next_cursor']}")
    return {"ok": True, "studies": rows, "next_cursor": body.get("next_cursor")}, "\n".join(lines)


def get_study(study_id: str) -> tuple[dict[str, Any], str]:
    body = api.call("studies", "GET", study_id)
    study, series = body["study"], body.get("series", [])
    lines = [f"{study.get('PatientName') or '?'}  ID {study.get('PatientID') or '-'}  "
             f"born {study.get('PatientBirthDate') or '-'}",
             f"{study.get('StudyDate') or '--------'}  {study.get('StudyDescription') or ''}  "
             f"accession {study.get('AccessionNumber') or '-'}  ({_count_text(study)})"]
    lines += [f"  #{s.get('SeriesNumber') or '-'} {s.get('Modality') or '-':<4} "
              f"{s.get('SeriesDescription') or '':<32} {s.get('instance_count') or 0} images  "
              f"{s['id']}" for s in series]
    return {"ok": True, "study": study, "series": series}, "\n".join(lines)


def delete_study(study_id: str) -> tuple[dict[str, Any], str]:
    body = api.call("studies", "DELETE", study_id, timeout=600)
    deletion = body["deletion"]
    counts = ", ".join(f"{k} {v}" for k, v in sorted((deletion.get("counts") or {}).items()))
    if deletion.get("status") != "completed":
        # 202: an upload of the study is still processed; the deletion finishes by itself.
        return ({"ok": True, "deletion": deletion},
                f"study {study_id} is being deleted ({counts}); it finishes by itself once "
                "the upload in progress ends")
    return ({"ok": True, "deletion": deletion},
            f"study {study_id} deleted ({counts})")
