"""WADO-RS frames and bulk data (PS3.18 §10.4.1.1.3, §10.4.1.1.5) of the caller's instances.

``/frames/{list}`` (numbers from 1, comma separated, at most :data:`MAX_FRAMES_PER_REQUEST`)
answers ``multipart/related`` with one part per frame, read from the stored object by ranged
reads at the offsets in the series' frame index (:mod:`pacs.indexing.series_metadata`);
an instance missing from the index (indexed since the last build) has its table computed
from a bounded header parse. Native frames are ``application/octet-stream`` with
``transfer-syntax=1.2.840.10008.1.2.1`` (Explicit VR Big Endian files: ``...1.2.2``);
encapsulated frames keep their stored syntax, as the codec's media type (``image/jpeg``,
``image/jls``, ``image/jp2``, ``image/jpx``, ``image/dicom-rle``, ...) or, when the request
allows that syntax by name or ``transfer-syntax=*``, as ``application/octet-stream``. No
transcoding: anything else is 406. A deflated instance is inflated front to back up to the
last frame asked for, keeping only those frames (at most ``PACS_INFLATE_MAX_BYTES``
inflated).

``/bulkdata/{path}`` resolves the BulkDataURIs of ``/metadata``: ``7FE00010`` is every
frame, one part each as above; any other path (``tag/item/tag...``) is that element's value
from the bounded header parse, one ``application/octet-stream`` part.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from pacs import ids
from pacs.clients import Clients
from pacs.dicom import header as dicom_header
from pacs.dicom.frames import FramesUnavailable, FrameTable, frame_table, read_deflated_frames
from pacs.dicom.json_header import element_at
from pacs.dicomweb import qido
from pacs.dicomweb.multipart import MultipartWriter, Part
from pacs.dicomweb.negotiation import MULTIPART, Offer, choose
from pacs.errors import BadRequest, NotFound
from pacs.indexing import catalog, series_metadata

MAX_FRAMES_PER_REQUEST = 1000
#: Frame indexes kept per process (least recently used dropped): a 3,000-slice series'
#: index is roughly 1 MB parsed.
INDEX_CACHE_SERIES = 16
_INDEX_CACHE: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
OCTETS = "application/octet-stream"
EXPLICIT_LE, EXPLICIT_BE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"
PIXEL_PATH = ("7FE00010", "7FE00008", "7FE00009")
#: The media type of an encapsulated syntax's frames (PS3.18 Table 8.7.3-5).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    **dict.fromkeys(("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                     "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"), "image/jpeg"),
    **dict.fromkeys(("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"), "image/jls"),
    **dict.fromkeys(("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"), "image/jp2"),
    **dict.fromkeys(("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"), "image/jpx"),
    **dict.fromkeys(("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                     "1.2.840.10008.1.2.4.203"), "image/jphc"),
}


def parse_frame_list(text: str) -> list[int]:
    """``"1,3,5"`` → ``[1, 3, 5]``; 400 ``bad_frame_list`` for anything else."""
    parts = text.split(",")
    if len(parts) > MAX_FRAMES_PER_REQUEST or not all(p.isdigit() and len(p) < 9
                                                      for p in parts):
        raise BadRequest("frames are numbers from 1, comma separated, at most "
                         f"{MAX_FRAMES_PER_REQUEST}", code="bad_frame_list")
    numbers = [int(p) for p in parts]
    if min(numbers) < 1:
        raise BadRequest("frame numbers start at 1", code="bad_frame_list")
    return numbers


def _not_found(what: str = "instance") -> NotFound:
    return NotFound(f"no such {what}", code="not_found")


def _instance(clients: Clients, uid: str, study_uid: str, series_uid: str, sop_uid: str
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(instance document, series metadata pointer) of one of the caller's instances."""
    fs, key = clients.firestore, clients.settings.hash_key
    owned = qido.owned_series(fs, key, uid, study_uid, series_uid, opening=True)
    if owned is None or not qido.is_uid(sop_uid):
        raise _not_found()
    instance = ids.instance_key(key, uid, sop_uid)
    snap = catalog.instance_ref(fs, *owned, instance).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid or not doc.get("object"):
        raise _not_found()
    series = catalog.series_ref(fs, *owned).get(field_paths=["metadata"])
    pointer = ((series.to_dict() or {}).get("metadata") or {}) if series.exists else {}
    return {**doc, "key": instance}, pointer


def _blob(clients: Clients, doc: dict[str, Any]) -> Any:
    # ``bucket``: a de-identified share's copy lives in the derived bucket (copy_view).
    return clients.storage.bucket(doc.get("bucket") or clients.settings.instances_bucket).blob(
        doc["object"], generation=int(doc["generation"]))


def _frame_index(clients: Clients, pointer: dict[str, Any]) -> dict[str, Any] | None:
    """The series' frame index, from the process cache when this build was read before (a
    viewer asks for every instance's frames in turn: one index read per series, not per
    request). A build's objects never change (a rebuild writes new names)."""
    import gzip
    import json

    from google.api_core.exceptions import NotFound as GcsNotFound

    key = (pointer["frames_object"], str(pointer.get("frames_generation")))
    with _CACHE_LOCK:
        if key in _INDEX_CACHE:
            _INDEX_CACHE.move_to_end(key)
            return _INDEX_CACHE[key]
    generation = pointer.get("frames_generation")
    blob = clients.storage.bucket(clients.settings.derived_bucket).blob(
        pointer["frames_object"], generation=int(generation) if generation else None)
    try:
        index = json.loads(gzip.decompress(blob.download_as_bytes())).get("instances") or {}
    except GcsNotFound:
        return None
    with _CACHE_LOCK:
        _INDEX_CACHE[key] = index
        while len(_INDEX_CACHE) > INDEX_CACHE_SERIES:
            _INDEX_CACHE.popitem(last=False)
    return index


def _indexed_table(clients: Clients, doc: dict[str, Any], pointer: dict[str, Any]
                   ) -> FrameTable | None:
    if not pointer.get("frames_object"):
        return None
    index = _frame_index(clients, pointer)
    if index is None:
        return None
    entry = index.get(doc["key"]) or {}
    if entry.get("g") != str(doc["generation"]):
        return None
    if "fe" in entry:
        raise FramesUnavailable(entry["fe"])
    return FrameTable.from_json(entry["f"]) if "f" in entry else None


def _header(clients: Clients, doc: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(header, dataset, reader) from a bounded parse of the stored object."""
    size = int(doc["size"])
    blob = _blob(clients, doc)
    head = blob.download_as_bytes(start=0, end=min(size, series_metadata.HEAD_BYTES) - 1,
                                  checksum=None)
    reader = series_metadata.RangedObject(blob, size, head)
    settings = clients.settings
    try:
        header, ds = dicom_header.read_header_dataset(
            reader, size, max_header_bytes=settings.header_max_bytes,
            inflate_max_bytes=settings.inflate_max_bytes)
    except dicom_header.HeaderRejected as err:
        raise FramesUnavailable("corrupt", f"the stored instance cannot be read ({err.code})"
                                ) from None
    return header, ds, reader


def _table(clients: Clients, doc: dict[str, Any], pointer: dict[str, Any]) -> FrameTable:
    table = _indexed_table(clients, doc, pointer)
    if table is None:
        header, ds, reader = _header(clients, doc)
        table = frame_table(header, ds, reader, int(doc["size"]))
    return table


def _offers(table: FrameTable) -> list[Offer]:
    if table.native:
        syntax = EXPLICIT_BE if table.transfer_syntax == EXPLICIT_BE else EXPLICIT_LE
        return [Offer(MULTIPART, OCTETS, syntax)]
    media = FRAME_MEDIA_TYPES.get(table.transfer_syntax, OCTETS)
    offers = [Offer(MULTIPART, media, table.transfer_syntax)]
    if media != OCTETS:
        offers.append(Offer(MULTIPART, OCTETS, table.transfer_syntax, default=False))
    return offers


def _frame_chunks(clients: Clients, doc: dict[str, Any], table: FrameTable,
                  numbers: list[int]) -> Iterator[list[bytes]]:
    """Each frame's bytes: ranged reads of the object (one per fragment), or of the
    inflated copy of a deflated object."""
    if table.inflate:
        blob = _blob(clients, doc)
        with blob.open("rb", chunk_size=1024**2) as reader:
            for frame in read_deflated_frames(reader, int(doc["size"]), table, numbers,
                                              cap=clients.settings.inflate_max_bytes):
                yield [frame]
        return
    blob = _blob(clients, doc)
    for number in numbers:
        yield [blob.download_as_bytes(start=o, end=o + n - 1, checksum=None)
               for o, n in table.frames[number - 1] if n]


def _multipart(offer: Offer, parts: Iterator[list[bytes]]) -> tuple[str, Iterator[bytes]]:
    part_type = f"{offer.part_type}; transfer-syntax={offer.transfer_syntax}"
    writer = MultipartWriter(offer.part_type or OCTETS)
    return writer.content_type, writer.stream(Part(part_type, chunks) for chunks in parts)


def retrieve_frames(clients: Clients, uid: str, study_uid: str, series_uid: str, sop_uid: str,
                    frame_list: str, accept: str | None,
                    found: tuple[dict[str, Any], dict[str, Any]] | None = None
                    ) -> tuple[str, Iterator[bytes]]:
    """(Content-Type, body) of the frames asked for. ``found`` (instance document and its
    series' build) replaces the caller's catalog: what backs this request for another
    credential (a de-identified share's copy, :mod:`pacs.dicomweb.copy_view`).

    Raises
    ------
    BadRequest
        ``bad_frame_list``.
    NotFound
        Not the caller's instance, or a frame number past the last frame.
    FramesUnavailable
        The instance has no pixel data (404 ``no_pixel_data``) or its frames cannot be
        located (422).
    NotAcceptable
        ``Accept`` allows no representation of the stored frames.
    """
    numbers = parse_frame_list(frame_list)
    doc, pointer = found or _instance(clients, uid, study_uid, series_uid, sop_uid)
    table = _checked_table(clients, doc, pointer)
    if max(numbers) > len(table.frames):
        raise _not_found(f"frame (the instance has {len(table.frames)})")
    offer = choose(accept, _offers(table), default_part_type=OCTETS)
    first = _frame_chunks(clients, doc, table, numbers)
    return _multipart(offer, first)


def _checked_table(clients: Clients, doc: dict[str, Any], pointer: dict[str, Any]
                   ) -> FrameTable:
    try:
        return _table(clients, doc, pointer)
    except FramesUnavailable as err:
        if err.code == "no_pixel_data":
            raise NotFound("this instance has no pixel data", code="no_pixel_data") from None
        raise


def retrieve_bulkdata(clients: Clients, uid: str, study_uid: str, series_uid: str,
                      sop_uid: str, path: list[str], accept: str | None,
                      found: tuple[dict[str, Any], dict[str, Any]] | None = None
                      ) -> tuple[str, Iterator[bytes]]:
    """(Content-Type, body) of one BulkDataURI (see the module docstring). 404 for a path
    that names no binary element of the instance. ``found``: as :func:`retrieve_frames`."""
    if not path or len(path) > 41:
        raise _not_found("bulk data")
    doc, pointer = found or _instance(clients, uid, study_uid, series_uid, sop_uid)
    if len(path) == 1 and path[0].upper() in PIXEL_PATH:
        table = _checked_table(clients, doc, pointer)
        offer = choose(accept, _offers(table), default_part_type=OCTETS)
        numbers = list(range(1, len(table.frames) + 1))
        return _multipart(offer, _frame_chunks(clients, doc, table, numbers))
    _header_, ds, _reader = _header(clients, doc)
    element = element_at(ds, [p.upper() for p in path])
    value = getattr(element, "value", None)
    if element is None or element.VR == "SQ" or not isinstance(value, bytes | bytearray):
        raise _not_found("bulk data")
    offer = choose(accept, [Offer(MULTIPART, OCTETS, EXPLICIT_LE)], default_part_type=OCTETS)
    return _multipart(offer, iter([[bytes(value)]]))
