"""DICOMweb for a de-identified share (issue 16): its copy, never the study.

A share view of a de-identified share (:attr:`pacs.keys.access.Credential.copy`) reaches
exactly one study, the copy's, under the copy's remapped UIDs; every other UID (the original
study's, series' and instances' among them) is not found (404, or an empty search).

The seam is *which documents back the request*: here the copy's, never the owner's catalog.

* Study and series attributes: the share document's ``copy_index``, taken from the
  de-identified headers when the copy was made (:mod:`pacs.links.copy_metadata`).
* Instances: the ``share_copies`` documents (:mod:`pacs.links.deidentified`), each naming its
  object in the derived bucket.
* Metadata and frames: each copy series' build, written beside the copy in the layout of a
  series' own build.

Everything else is the study's code given these documents: query checks, matching, ordering
and DICOM JSON of :mod:`pacs.dicomweb.qido` and :mod:`pacs.dicomweb.attributes`; retrieve
(multipart and ZIP) of :mod:`pacs.dicomweb.wado`; :mod:`pacs.dicomweb.metadata`;
:mod:`pacs.dicomweb.frames`; an instance's ``rendered``, ``thumbnail`` and rendered frames
of :mod:`pacs.dicomweb.rendered`. A copy has no stored previews: study and series thumbnails
and rendered studies and series are 404.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pacs.clients import Clients
from pacs.dicomweb import attributes, frames, metadata, qido, rendered, wado, wado_rs
from pacs.dicomweb.metadata import Reply
from pacs.errors import BadRequest, NotFound
from pacs.links import deidentified

JSON_HEADERS = {"Content-Type": attributes.MEDIA_TYPE, "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff"}
SEARCHES = ("studies", "all_series", "all_instances", "series", "instances")


@dataclass(frozen=True)
class Request:
    """One DICOMweb request as the entry point routed it."""

    resource: str
    uids: list[str]
    items: list[tuple[str, str]]
    headers: Mapping[str, str]
    base: str
    method: str
    path: str


def _not_found() -> NotFound:
    return NotFound("no such study, series or instance", code="not_found")


class CopyStudy:
    """The documents of one share's copy (see the module docstring)."""

    def __init__(self, clients: Clients, credential: Any) -> None:
        index = credential.copy or {}
        self.clients = clients
        self.owner = credential.uid
        self.share_id = credential.credential_id
        self.study: dict[str, Any] = index.get("study") or {}
        self.study_uid = self.study.get("StudyInstanceUID")
        series = (index.get("series") or {}).values()
        self.series = sorted((s for s in series if s.get("owner") == self.owner),
                             key=qido.series_order)

    def one_series(self, series_uid: str | None) -> dict[str, Any] | None:
        """The copy series of this UID, or None."""
        return next((s for s in self.series if s.get("SeriesInstanceUID") == series_uid),
                    None)

    def instances(self, series_uid: str | None = None, sop_uid: str | None = None
                  ) -> list[dict[str, Any]]:
        """The copied instances (all, one series' or one), in series then instance order,
        each with ``key`` (its document id) and ``bucket``."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self.clients.firestore.collection("shares").document(
            self.share_id).collection(deidentified.COPIES)
        if sop_uid is not None:
            query = query.where(filter=FieldFilter("SOPInstanceUID", "==", sop_uid))
        elif series_uid is not None:
            query = query.where(filter=FieldFilter("SeriesInstanceUID", "==", series_uid))
        bucket = self.clients.settings.derived_bucket
        docs = [{**(s.to_dict() or {}), "key": s.id, "bucket": bucket} for s in query.stream()]
        docs = [d for d in docs if d.get("owner") == self.owner and d.get("object")
                and (series_uid is None or d.get("SeriesInstanceUID") == series_uid)]
        rank = {s.get("SeriesInstanceUID"): i for i, s in enumerate(self.series)}
        return sorted(docs, key=lambda d: (rank.get(d.get("SeriesInstanceUID"), len(rank)),
                                           qido.instance_order(d)))

    # --- QIDO-RS -------------------------------------------------------------------------

    def _study_matches(self, query: qido.Query) -> bool:
        match = qido.match_studies(query, also_modality=query.matches.get("Modality"))
        return bool(self.study_uid) and match.matches(self.owner, self.study)

    def search(self, request: Request, credential: Any) -> list[dict[str, Any]]:
        """A QIDO-RS search of the copy (the study, its series or its instances)."""
        if request.resource in ("series", "instances"):
            if request.uids[0] != self.study_uid:
                return []
            scoped: list[tuple[str, str]] | None = request.items
        else:
            scoped = credential.study_search(request.items)
            if scoped is None:
                return []
        levels = {"studies": ("study",), "all_series": ("study", "series"),
                  "all_instances": ("study", "series", "instance"), "series": ("series",),
                  "instances": ("instance",)}[request.resource]
        keys = {"study": qido.STUDY_KEYS, "series": qido.SERIES_KEYS,
                "instance": qido.INSTANCE_KEYS}
        query = qido.parse_query(scoped, sum((keys[level] for level in levels), ()),
                                 sum((attributes.HELD[level] for level in levels), ()))
        if "study" in levels and not self._study_matches(query):
            return []
        rows = self._rows(request, query, levels)
        return rows[query.offset:query.offset + query.limit]

    def _rows(self, request: Request, query: qido.Query, levels: tuple[str, ...]
              ) -> list[dict[str, Any]]:
        base, study_uid = request.base, self.study_uid
        study = (query.keywords("study"), attributes.study_values(
            self.study, qido.study_url(base, study_uid) if levels[-1] == "study" else None))
        if levels == ("study",):
            return [attributes.answer([study])]
        series_check = qido.series_check(query)
        series = [s for s in self.series if series_check(s)]
        if request.resource == "instances":
            series = [s for s in series if s.get("SeriesInstanceUID") == request.uids[1]]
        out = []
        for doc in series:
            series_uid = doc.get("SeriesInstanceUID")
            parts = [study] if "study" in levels else []
            if "series" in levels:
                parts.append((query.keywords("series"), attributes.series_values(
                    study_uid, doc, qido.series_url(base, study_uid, series_uid)
                    if levels[-1] == "series" else None)))
            if levels[-1] == "series":
                out.append(attributes.answer(parts))
                continue
            check = qido.instance_check(query)
            for item in self.instances(series_uid):
                if check(item):
                    out.append(attributes.answer([*parts, (
                        query.keywords("instance"), attributes.instance_values(
                            study_uid, series_uid, item, qido.instance_url(
                                base, study_uid, series_uid, item.get("SOPInstanceUID"))))]))
        return out

    # --- WADO-RS -------------------------------------------------------------------------

    def _rendered(self, route: Any, request: Request, accept: str | None) -> Reply:
        """An instance's ``/rendered`` or ``/thumbnail``, or ``/frames/{list}/rendered``,
        of the copy's object (:mod:`pacs.dicomweb.rendered`)."""
        docs = self.instances(route.uids[1], route.uids[2])
        if not docs:
            raise _not_found()
        if route.kind == "frames":
            return _rendered_reply(*rendered.render_frames(
                self.clients, self.owner, *route.uids, route.tail[0], request.items, accept,
                doc=docs[0]))
        media_type, image = rendered.render_instance(
            self.clients, self.owner, *route.uids, request.items, accept,
            thumbnail=route.kind == "thumbnail", doc=docs[0])
        return _rendered_reply(media_type, [image])

    def _check(self, uids: list[str]) -> None:
        """404 unless the path's UIDs are the copy's study and (when given) one of its
        series."""
        if not uids or uids[0] != self.study_uid or (
                len(uids) > 1 and self.one_series(uids[1]) is None):
            raise _not_found()

    def retrieve(self, request: Request) -> Reply:
        """A study, series or instance of the copy (multipart, or the ZIP)."""
        if request.items:
            raise BadRequest("a retrieve takes no query parameters", code="unsupported_query")
        self._check(request.uids)
        uids = request.uids + [None] * (3 - len(request.uids))
        docs = self.instances(uids[1], uids[2])
        if not docs:
            raise _not_found()
        body = wado.retrieve(self.clients, self.owner, *uids, accept=request.headers.get(
            "Accept"), listing=(f"share-{self.share_id}", [(d["SeriesInstanceUID"], d)
                                                          for d in docs]))
        return Reply(200, {"Content-Type": body.content_type, **wado_rs.SECURITY_HEADERS,
                           **body.headers}, body.chunks)

    def wado(self, request: Request) -> Reply:
        """Metadata, frames and bulk data of the copy (:mod:`pacs.dicomweb.wado_rs` routes)."""
        route = wado_rs.match_path(request.path)
        rendering = route is not None and (route.kind in ("rendered", "thumbnail") or (
            route.kind == "frames" and route.tail[1:] == ["rendered"]))
        if route is None or (rendering and route.level != "instance"):
            raise NotFound("a de-identified share renders single instances and frames only "
                           "(no stored previews)", code="not_found")
        self._check(route.uids)
        accept = request.headers.get("Accept")
        if request.items and not rendering:
            raise BadRequest("this resource takes no query parameters",
                             code="unsupported_query")
        uids = route.uids + [None] * (3 - len(route.uids))
        if rendering:
            return self._rendered(route, request, accept)
        if route.kind == "metadata":
            series = [self.one_series(uids[1])] if uids[1] else self.series
            return metadata.metadata(
                self.clients, self.owner, *uids, base=request.base, accept=accept,
                if_none_match=request.headers.get("If-None-Match"),
                accept_encoding=request.headers.get("Accept-Encoding"),
                pointers=[s["metadata"] for s in series if s])
        docs = self.instances(uids[1], uids[2])
        if not docs:
            raise _not_found()
        found = (docs[0], self.one_series(uids[1])["metadata"])  # type: ignore[index]
        if route.kind == "frames":
            if len(route.tail) != 1:
                raise wado_rs.NotServed("rendered frames are not offered; use /frames")
            content_type, chunks = frames.retrieve_frames(
                self.clients, self.owner, *route.uids, route.tail[0], accept, found=found)
        else:
            content_type, chunks = frames.retrieve_bulkdata(
                self.clients, self.owner, *route.uids, route.tail, accept, found=found)
        return Reply(200, {"Content-Type": content_type, **wado_rs.SECURITY_HEADERS}, chunks)


def _rendered_reply(content_type: str, chunks: Any) -> Reply:
    return Reply(200, {"Content-Type": content_type, **wado_rs.SECURITY_HEADERS}, chunks)


def serve(clients: Clients, credential: Any, request: Request) -> Reply:
    """Answer one DICOMweb request of a de-identified share's view from its copy."""
    if request.method == "DELETE":
        credential.require_write("delete a study")  # a share is read-only: 403
    copy = CopyStudy(clients, credential)
    if request.resource in SEARCHES:
        body = json.dumps(copy.search(request, credential)).encode()
        return Reply(200, dict(JSON_HEADERS), [body])
    if request.resource == "wado":
        return copy.wado(request)
    return copy.retrieve(request)
