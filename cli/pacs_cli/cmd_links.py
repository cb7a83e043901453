"""``pacs link``, ``pacs share``, ``pacs shares``, ``pacs revoke``, ``pacs access-log``:
viewer links, share links and the access history (the ``sign-link`` function)."""

from __future__ import annotations

import re
from typing import Any

from pacs_cli import api
from pacs_cli.errors import CliError

FUNCTION = "sign-link"
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def register(sub) -> None:
    p = sub.add_parser("link", help="signed short-lived viewer URLs of one of your studies")
    p.add_argument("study_id")
    p.add_argument("--all", action="store_true",
                   help="instance URLs of every series (default: the first series only)")
    p.set_defaults(run=link)

    p = sub.add_parser("share", help="create a share link for one study")
    p.add_argument("study_id")
    p.add_argument("--expires", default="24h", help="lifetime: 90s, 30m, 24h, 7d (max 7d)")
    p.add_argument("--max-views", type=int, default=None, help="views allowed (default: any)")
    p.set_defaults(run=share)

    p = sub.add_parser("shares", help="your share links and their state")
    p.set_defaults(run=shares)

    p = sub.add_parser("revoke", help="revoke a share link (new views stop at once)")
    p.add_argument("share_id")
    p.set_defaults(run=revoke)

    p = sub.add_parser("access-log", help="who reached your studies, when, from where")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--page-token", default=None)
    p.set_defaults(run=access_log)


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``24h``, ``7d`` → seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise CliError(f"not a duration: {text!r} (use e.g. 30m, 24h, 7d)", code="bad_duration")
    return int(match.group(1)) * _UNITS[match.group(2)]


def series_instances(study_id: str, series_id: str, call=api.call) -> list[dict[str, Any]]:
    """Every instance (with its URL) of one series, page by page."""
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        page = call(FUNCTION, "POST", "series",
                    json={"study_id": study_id, "series_id": series_id, "page_token": token})
        rows.extend(page["instances"])
        token = page.get("next_page_token")
        if not token:
            return rows


def link(args) -> tuple[dict[str, Any], str]:
    manifest = api.call(FUNCTION, "POST", "manifest", json={"study_id": args.study_id})
    series = manifest.get("series", [])
    for entry in series if args.all else series[:1]:
        entry["instances"] = series_instances(args.study_id, entry["series_id"])
    study = manifest.get("study", {})
    lines = [f"study {manifest['study_id']}: {study.get('StudyDescription') or ''} "
             f"{study.get('StudyDate') or ''}".rstrip(),
             f"URLs expire {manifest['expires_at']} ({manifest['ttl_seconds']} s)"]
    for entry in series:
        lines.append(f"  series {entry['series_id']} #{entry.get('SeriesNumber')} "
                     f"{entry.get('Modality') or ''} {entry.get('SeriesDescription') or ''} "
                     f"({entry.get('instance_count', '?')} instances)")
        preview = entry.get("preview") or {}
        lines.append(f"    preview: {preview.get('url') or preview.get('status')}")
        for row in entry.get("instances", []):
            lines.append(f"    #{row.get('InstanceNumber')}: {row.get('url')}")
    if not args.all and len(series) > 1:
        lines.append("  (instance URLs of the first series only; --all for every series)")
    return manifest, "\n".join(lines)


def share(args) -> tuple[dict[str, Any], str]:
    body: dict[str, Any] = {"study_id": args.study_id,
                            "expires_in_seconds": parse_duration(args.expires)}
    if args.max_views is not None:
        body["max_views"] = args.max_views
    created = api.call(FUNCTION, "POST", "shares", json=body)
    views = f", {created['max_views']} views" if created.get("max_views") else ""
    human = (f"share {created['share_id']} until {created['expires_at']}{views}\n"
             f"{created['url']}\n(the link is shown once: anyone holding it can view the study)")
    return created, human


def shares(args) -> tuple[dict[str, Any], str]:
    listed = api.call(FUNCTION, "GET", "shares")
    lines = [f"{s['share_id']}  {s['status']:<9} study {s['study_id']}  until {s['expires_at']}"
             f"  views {s['views']}/{s['max_views'] if s['max_views'] is not None else '-'}"
             for s in listed["shares"]]
    return listed, "\n".join(lines) or "no shares"


def revoke(args) -> tuple[dict[str, Any], str]:
    result = api.call(FUNCTION, "DELETE", f"shares/{args.share_id}")
    return result, f"share {result['share_id']} revoked"


def access_log(args) -> tuple[dict[str, Any], str]:
    params: dict[str, Any] = {"limit": args.limit}
    if args.page_token:
        params["page_token"] = args.page_token
    page = api.call(FUNCTION, "GET", "access", params=params)
    lines = [f"{r['at']}  {r['kind']:<14} study {r['study_id']}  by {r['actor_type']} "
             f"{r['actor']}  ip {r.get('ip') or '-'}  {r.get('user_agent') or ''}".rstrip()
             for r in page["records"]]
    if page.get("next_page_token"):
        lines.append(f"(more: --page-token {page['next_page_token']})")
    return page, "\n".join(lines) or "no access records"
