"""WADO-RS rendered and thumbnail resources (PS3.18 §10.4.1.1.4, §10.4.1.1.6) as JPEG or PNG,
reusing the preview renderer (:func:`pacs.indexing.preview.render_preview`: Modality LUT,
the header's first window or the 1st-99th percentile, MONOCHROME1 inverted, colour as RGB;
the middle frame of a multi-frame instance).

* ``.../instances/{i}/rendered``: the instance at up to :data:`RENDERED_MAX` pixels on its
  longest side (its own size when smaller); ``viewport=w,h`` bounds it further.
* ``.../instances/{i}/thumbnail``: the same at :data:`THUMBNAIL_SIZE` (or ``viewport``).
* ``.../series/{s}/thumbnail`` and ``/studies/{s}/thumbnail``: the series' (study's) stored
  preview image, the one the web client shows.
* ``.../instances/{i}/frames/{list}/rendered``: those frames (:func:`render_frames`).
* ``.../series/{s}/rendered`` and ``/studies/{s}/rendered``: every instance with an image,
  as ``multipart/related`` (:func:`render_many`), at most :data:`MAX_RENDERED`.

``Accept`` chooses ``image/jpeg`` or ``image/png`` (``*/*``: the renderer's own choice, PNG
for greyscale, JPEG for colour); anything else is 406. Other query parameters are 400.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from pacs import ids
from pacs.clients import Clients
from pacs.dicomweb import frames, qido, wado
from pacs.dicomweb.multipart import MultipartWriter, Part
from pacs.dicomweb.negotiation import MULTIPART, Offer, choose
from pacs.errors import BadRequest, NotFound
from pacs.indexing import catalog

RENDERED_MAX = 1024
#: Most images in one rendered answer (a study's or series' instances, or frames): each is
#: decoded and encoded on the request, so this bounds its time (the 60 s of Hosting).
MAX_RENDERED = 50
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


def _instance_doc(clients: Clients, uid: str, study_uid: str, series_uid: str,
                  sop_uid: str) -> dict[str, Any]:
    """The instance document of one of the caller's instances (403 ``restricted`` while
    processing is restricted, as every resource that opens a study)."""
    fs, key = clients.firestore, clients.settings.hash_key
    owned = qido.owned_series(fs, key, uid, study_uid, series_uid, opening=True)
    if owned is None or not qido.is_uid(sop_uid):
        raise _not_found()
    snap = catalog.instance_ref(fs, *owned, ids.instance_key(key, uid, sop_uid)).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid or not doc.get("object"):
        raise _not_found()
    return doc


def _render(clients: Clients, doc: dict[str, Any], size_limit: int,
            numbers: list[int] | None = None) -> Iterator[bytes]:
    """The instance object's frames ``numbers`` (from 1; None: the middle frame) rendered
    one at a time, each in the renderer's own type, at most ``size_limit`` pixels on the
    longest side (the image's own size when smaller). The object is read and its header
    parsed once; each frame is decoded alone. Raises PreviewFailed (422) and NotFound (a
    frame past the last) on the first ``next``."""
    from pacs.dicom import header as dicom_header
    from pacs.indexing import preview

    settings = clients.settings
    # ``bucket``: a de-identified share's copy lives in the derived bucket (copy_view).
    blob = clients.storage.bucket(doc.get("bucket") or settings.instances_bucket).blob(
        doc["object"], generation=int(doc["generation"]))
    with blob.open("rb", chunk_size=1024**2) as reader:
        try:
            header = dicom_header.read_header(reader, int(doc["size"]),
                                              max_header_bytes=settings.header_max_bytes,
                                              inflate_max_bytes=settings.inflate_max_bytes)
        except dicom_header.HeaderRejected:
            raise preview.PreviewFailed("undecodable") from None
        fields = header.fields
        count = max(1, fields.get("NumberOfFrames") or 1)
        if numbers and max(numbers) > count:
            raise NotFound(f"no such frame (the instance has {count})", code="not_found")
        size = min(size_limit, max(fields.get("Rows") or 1, fields.get("Columns") or 1))
        for number in numbers or [None]:
            reader.seek(0)
            yield preview.render_preview(reader, header, size=size,
                                         inflate_max_bytes=settings.inflate_max_bytes,
                                         frame=None if number is None else number - 1)


def render_instance(clients: Clients, uid: str, study_uid: str, series_uid: str,
                    sop_uid: str, items: list[tuple[str, str]], accept: str | None,
                    thumbnail: bool, doc: dict[str, Any] | None = None) -> tuple[str, bytes]:
    """(media type, image) of one of the caller's instances. ``doc`` (the instance
    document) replaces the caller's catalog: what backs the request for another credential
    (a de-identified share's copy, :mod:`pacs.dicomweb.copy_view`).

    Raises NotFound (not the caller's), PreviewFailed (422: no image, too large,
    undecodable), NotAcceptable, BadRequest (query)."""
    size_limit = _viewport(items, THUMBNAIL_SIZE if thumbnail else RENDERED_MAX)
    choose(accept, [Offer(JPEG), Offer(PNG)])  # 406 before any read
    doc = doc or _instance_doc(clients, uid, study_uid, series_uid, sop_uid)
    return _answer(next(_render(clients, doc, size_limit)), accept)


def _parts(images: Iterable[bytes], media_type: str) -> tuple[str, Iterator[bytes]]:
    """(Content-Type, body) of a ``multipart/related`` of images, each converted to
    ``media_type`` when the renderer chose the other; one image in memory at a time."""
    from pacs.indexing.preview import preview_media_type

    writer = MultipartWriter(media_type)
    return writer.content_type, writer.stream(
        Part(media_type, [image if preview_media_type(image) == media_type
                          else _convert(image, media_type)]) for image in images)


def _primed(images: Iterator[bytes]) -> Iterator[bytes]:
    """``images`` with the first one made before the answer starts: refusals (422, 404)
    come as a status, not as a cut body."""
    first = next(images, None)
    return images if first is None else itertools.chain([first], images)


def render_frames(clients: Clients, uid: str, study_uid: str, series_uid: str, sop_uid: str,
                  frame_list: str, items: list[tuple[str, str]], accept: str | None,
                  doc: dict[str, Any] | None = None) -> tuple[str, Iterable[bytes]]:
    """``.../frames/{list}/rendered``: (Content-Type, body). One frame: an image as
    :func:`render_instance` sends it (or a one-part multipart when only that is
    accepted); several: ``multipart/related`` of ``image/jpeg`` or ``image/png``, in the
    order asked, at most :data:`MAX_RENDERED`.

    Raises BadRequest (``bad_frame_list``, ``too_many_images``, query), NotAcceptable,
    NotFound (not the caller's, a frame past the last), PreviewFailed (422)."""
    numbers = frames.parse_frame_list(frame_list)
    if len(numbers) > MAX_RENDERED:
        raise _too_many(f"{MAX_RENDERED} frames")
    size = _viewport(items, RENDERED_MAX)
    offers = [Offer(MULTIPART, JPEG), Offer(MULTIPART, PNG)]
    single = len(numbers) == 1
    chosen = choose(accept, [Offer(JPEG), Offer(PNG), *offers] if single else offers,
                    default_part_type=JPEG)
    doc = doc or _instance_doc(clients, uid, study_uid, series_uid, sop_uid)  # as above
    images = _primed(_render(clients, doc, size, numbers))
    if chosen.part_type is None:
        media_type, image = _answer(next(images), accept)
        return media_type, [image]
    return _parts(images, chosen.part_type)


def render_many(clients: Clients, uid: str, study_uid: str, series_uid: str | None,
                items: list[tuple[str, str]], accept: str | None
                ) -> tuple[str, Iterable[bytes]]:
    """``/studies/{s}/rendered`` and ``.../series/{se}/rendered``: (Content-Type, body).

    ``multipart/related`` (the default, ``type`` ``image/jpeg`` unless ``image/png`` is
    asked for): every instance with an image, series by number then instances by number,
    the middle frame of a multi-frame one, rendered while the answer streams (one image in
    memory). ``Accept: image/jpeg`` or ``image/png`` alone: the first of them, as Orthanc
    answers. More than :data:`MAX_RENDERED` instances: 400 ``too_many_images`` before
    anything is rendered.

    Raises NotFound, Forbidden (``restricted``), NotAcceptable, BadRequest, PreviewFailed
    (422: no instance with an image, or the first one undecodable)."""
    from pacs.indexing.preview import PreviewFailed

    size = _viewport(items, RENDERED_MAX)
    chosen = choose(accept, [Offer(MULTIPART, JPEG), Offer(MULTIPART, PNG), Offer(JPEG),
                             Offer(PNG)], default_part_type=JPEG)
    _, listed = wado.list_instances(clients, uid, study_uid, series_uid)
    if len(listed) > MAX_RENDERED:
        raise _too_many(f"{MAX_RENDERED} instances (this one has {len(listed)})")

    def images() -> Iterator[bytes]:
        for entry in listed:
            try:
                yield next(_render(clients, entry.doc, size))
            except PreviewFailed as err:
                if err.code != "not_image":  # a report or a waveform has nothing to show
                    raise
    rendered = _primed(images())
    if chosen.part_type is None:
        first = next(rendered, None)
        if first is None:
            raise PreviewFailed("not_image")
        media_type, image = _answer(first, chosen.media_type)
        return media_type, [image]
    return _parts(rendered, chosen.part_type)


def _too_many(what: str) -> BadRequest:
    return BadRequest(f"a rendered answer holds at most {what}: ask for each instance's "
                      "/rendered (or fewer frames), or the series' /thumbnail",
                      code="too_many_images")


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
