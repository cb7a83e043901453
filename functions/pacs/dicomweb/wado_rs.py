"""Routing of the WADO-RS resources below a study, series or instance: ``metadata``,
``frames/{list}``, ``bulkdata/{path}``, ``rendered`` and ``thumbnail``
(:mod:`pacs.dicomweb.metadata`, :mod:`pacs.dicomweb.frames`,
:mod:`pacs.dicomweb.rendered`; ``frames/{list}/rendered`` and the rendered study and series
too). :func:`match` recognises a path (the segments after
``studies``), :func:`serve` answers it as a :class:`~pacs.dicomweb.metadata.Reply` that the
entry point sends as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pacs.clients import Clients
from pacs.dicomweb import frames, metadata, rendered
from pacs.dicomweb.metadata import Reply
from pacs.errors import BadRequest, PacsError

LEVELS = {1: "study", 3: "series", 5: "instance"}
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class NotServed(PacsError):
    """A PS3.18 resource this service does not offer (see docs/dicomweb.md)."""

    code = "not_implemented"
    http_status = 501


@dataclass(frozen=True)
class Route:
    """``kind`` (metadata, frames, bulkdata, rendered, thumbnail), ``level`` (study, series,
    instance), the UIDs from the path and what follows the resource name."""

    kind: str
    level: str
    uids: list[str]
    tail: list[str]


def match(rest: list[str]) -> Route | None:
    """The WADO-RS resource named by ``rest`` (path segments after ``studies``), or None."""
    for length, level in LEVELS.items():
        if len(rest) <= length or not all(rest[i] == n for i, n in ((1, "series"),
                                                                    (3, "instances"))
                                          if i < length):
            continue
        kind, tail = rest[length], rest[length + 1:]
        if kind in ("metadata", "rendered", "thumbnail") and not tail:
            return Route(kind, level, [rest[i] for i in (0, 2, 4) if i < length], [])
        if kind in ("frames", "bulkdata") and level == "instance" and tail:
            return Route(kind, level, rest[0:5:2], tail)
    return None


def _no_query(items: list[tuple[str, str]]) -> None:
    if items:
        raise BadRequest("this resource takes no query parameters", code="unsupported_query")


def serve(clients: Clients, uid: str, route: Route, *, items: list[tuple[str, str]],
          headers: Any, base: str) -> Reply:
    """Answer one WADO-RS resource of the caller's (see :func:`match`)."""
    accept = headers.get("Accept")
    uids = route.uids + [None] * (3 - len(route.uids))
    if route.kind == "metadata":
        _no_query(items)
        return metadata.metadata(clients, uid, *uids, base=base, accept=accept,
                                 if_none_match=headers.get("If-None-Match"),
                                 accept_encoding=headers.get("Accept-Encoding"))
    if route.kind == "frames" and route.tail[1:] == ["rendered"]:
        content_type, chunks = rendered.render_frames(clients, uid, *route.uids,
                                                      route.tail[0], items, accept)
        return Reply(200, {"Content-Type": content_type, **SECURITY_HEADERS}, chunks)
    if route.kind in ("frames", "bulkdata"):
        _no_query(items)
        if route.kind == "frames":
            if len(route.tail) != 1:
                raise NotServed("no such frames resource (/frames/{list} or "
                                "/frames/{list}/rendered)")
            content_type, chunks = frames.retrieve_frames(clients, uid, *route.uids,
                                                          route.tail[0], accept)
        else:
            content_type, chunks = frames.retrieve_bulkdata(clients, uid, *route.uids,
                                                            route.tail, accept)
        return Reply(200, {"Content-Type": content_type, **SECURITY_HEADERS}, chunks)
    if route.level == "instance":
        media_type, image = rendered.render_instance(
            clients, uid, *route.uids, items, accept, thumbnail=route.kind == "thumbnail")
    elif route.kind == "thumbnail":
        media_type, image = rendered.stored_thumbnail(clients, uid, uids[0], uids[1], items,
                                                      accept)
    else:  # a study's or series' rendered images
        content_type, chunks = rendered.render_many(clients, uid, uids[0], uids[1], items,
                                                    accept)
        return Reply(200, {"Content-Type": content_type, **SECURITY_HEADERS}, chunks)
    return Reply(200, {"Content-Type": media_type, **SECURITY_HEADERS}, [image])


def match_path(path: str) -> Route | None:
    """:func:`match` on a whole request path (from its ``studies`` segment)."""
    parts = [p for p in path.split("/") if p]
    return match(parts[parts.index("studies") + 1:]) if "studies" in parts else None
