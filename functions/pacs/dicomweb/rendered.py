"""WADO-RS rendered and thumbnail resources (PS3.18 §10.4.1.1.4, §10.4.1.1.6) as JPEG or PNG,
reusing the preview renderer (:func:`pacs.indexing.preview.render_preview`: Modality LUT,
the header's first window or the 1st-99th percentile, MONOCHROME1 inverted, colour as RGB;
the middle frame of a multi-frame instance).

* ``.../instances/{i}/rendered``: the instance at up to :data:`RENDERED_MAX` pixels on its
  longest side (its own size when smaller); ``viewport=w,h`` bounds it further.
* ``.../instances/{i}/thumbnail``: the same at :data:`THUMBNAIL_SIZE` (or ``viewport``).
* ``.../series/{s}/thumbnail`` and ``/studies/{s}/thumbnail``: the series' (study's) stored
  preview image, the one the web client shows.

``Accept`` chooses ``image/jpeg`` or ``image/png`` (``*/*``: the renderer's own choice, PNG
for greyscale, JPEG for colour); anything else is 406. Other query parameters are 400.
"""

from __future__ import annotations

import io
from typing import Any

from pacs import ids
from pacs.clients import Clients
from pacs.dicomweb import qido
from pacs.dicomweb.negotiation import Offer, choose
from pacs.errors import BadRequest, NotFound
from pacs.indexing import catalog

RENDERED_MAX = 1024
THUMBNAIL_SIZE = 128
JPEG, PNG = "image/jpeg", "image/png"


def _viewport(items: list[tuple[str, str]], default: int) -> int:
    size = default
    for name, value in items:
        if name != "viewport":
            raise BadRequest(f"{name} is not supported here (only viewport)",
                             code="unsupported_query")
        parts = value.split(",")
        if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) <= 4096 for p in parts):
            raise BadRequest("viewport is w,h in pixels (1-4096)", code="bad_value")
        size = min(size, max(int(p) for p in parts))
    return size


def _convert(image: bytes, media_type: str) -> bytes:
    from PIL import Image

    picture = Image.open(io.BytesIO(image))
    out = io.BytesIO()
    if media_type == JPEG:
        picture.convert("RGB" if picture.mode not in ("L", "RGB") else picture.mode).save(
            out, format="JPEG", quality=90)
    else:
        picture.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _answer(image: bytes, accept: str | None) -> tuple[str, bytes]:
    from pacs.indexing.preview import preview_media_type

    own = preview_media_type(image)
    offers = [Offer(own), Offer(PNG if own == JPEG else JPEG)]
    chosen = choose(accept, offers).media_type
    return chosen, image if chosen == own else _convert(image, chosen)


def _not_found() -> NotFound:
    return NotFound("no such study, series or instance", code="not_found")


def render_instance(clients: Clients, uid: str, study_uid: str, series_uid: str,
                    sop_uid: str, items: list[tuple[str, str]], accept: str | None,
                    thumbnail: bool) -> tuple[str, bytes]:
    """(media type, image) of one of the caller's instances.

    Raises NotFound (not the caller's), PreviewFailed (422: no image, too large,
    undecodable), NotAcceptable, BadRequest (query)."""
    from pacs.dicom import header as dicom_header
    from pacs.indexing import preview

    size_limit = _viewport(items, THUMBNAIL_SIZE if thumbnail else RENDERED_MAX)
    choose(accept, [Offer(JPEG), Offer(PNG)])  # 406 before any read
    fs, settings = clients.firestore, clients.settings
    owned = qido.owned_series(fs, settings.hash_key, uid, study_uid, series_uid, opening=True)
    if owned is None or not qido.is_uid(sop_uid):
        raise _not_found()
    snap = catalog.instance_ref(fs, *owned, ids.instance_key(settings.hash_key, uid,
                                                              sop_uid)).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid or not doc.get("object"):
        raise _not_found()
    blob = clients.storage.bucket(settings.instances_bucket).blob(
        doc["object"], generation=int(doc["generation"]))
    with blob.open("rb", chunk_size=1024**2) as reader:
        try:
            header = dicom_header.read_header(reader, int(doc["size"]),
                                              max_header_bytes=settings.header_max_bytes,
                                              inflate_max_bytes=settings.inflate_max_bytes)
        except dicom_header.HeaderRejected:
            raise preview.PreviewFailed("undecodable") from None
        fields = header.fields
        size = min(size_limit, max(fields.get("Rows") or 1, fields.get("Columns") or 1))
        reader.seek(0)
        image = preview.render_preview(reader, header, size=size,
                                       inflate_max_bytes=settings.inflate_max_bytes)
    return _answer(image, accept)


def stored_thumbnail(clients: Clients, uid: str, study_uid: str, series_uid: str | None,
                     items: list[tuple[str, str]], accept: str | None) -> tuple[str, bytes]:
    """(media type, image) of a series' or a study's preview. 404 when there is none
    (no image in the series, or not rendered yet)."""
    _viewport(items, THUMBNAIL_SIZE)
    choose(accept, [Offer(JPEG), Offer(PNG)])
    fs, settings = clients.firestore, clients.settings
    doc: dict[str, Any] | None
    if series_uid is not None:
        owned = qido.owned_series(fs, settings.hash_key, uid, study_uid, series_uid,
                                  opening=True)
        if owned is None:
            raise _not_found()
        snap = catalog.series_ref(fs, *owned).get(field_paths=["preview"])
        doc = snap.to_dict() if snap.exists else None
    else:
        opened = qido.open_study(fs, settings.hash_key, uid, study_uid)
        doc = opened[1] if opened is not None else None
    if doc is None:
        raise _not_found()
    preview_state = doc.get("preview") or {}
    if preview_state.get("status") != "ready" or not preview_state.get("object"):
        raise NotFound("no thumbnail for this series or study", code="no_thumbnail")
    generation = preview_state.get("generation")
    blob = clients.storage.bucket(settings.derived_bucket).blob(
        preview_state["object"], generation=int(generation) if generation else None)
    from google.api_core.exceptions import NotFound as GcsNotFound

    try:
        image = blob.download_as_bytes()
    except GcsNotFound:
        raise NotFound("no thumbnail for this series or study", code="no_thumbnail") from None
    return _answer(image, accept)
