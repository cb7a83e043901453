"""A series' precomputed WADO-RS metadata and frame index, rebuilt when the series settles.

Two gzipped JSON objects in the derived bucket, beside the series preview (so study
deletion and erasure remove them with the previews' prefix):

* ``previews/{uid}/{study}/{series}.meta.{build}.json.gz``: the series' DICOM JSON array as
  ``/metadata`` serves it (instances by InstanceNumber; every header element without bulk
  data, :mod:`pacs.dicom.json_header`), its BulkDataURIs starting with :data:`BASE`, which
  the server replaces with its own base URL. A 3,000-slice series' metadata is one read.
* ``...frames.{build}.json.gz``: per instance key, its object generation, SOP Instance UID,
  position in the array and frame table (:mod:`pacs.dicom.frames`) or why there is none.

The series document's ``metadata`` field names the current build (objects, generations,
``built_at``). A rebuild reuses the entries of instances whose object generation is
unchanged, takes those ingest made for the others from the series' parts
(:mod:`pacs.indexing.metadata_parts`: no instance object read, no parse) and reads only
what is left (objects from other doors, a part lost): their first :data:`HEAD_BYTES`
fetched in parallel, parsed one at a time (pydicom's warning silencing is process-wide)
with further ranged reads only for long headers and fragment item headers. The parts a
build used are deleted once it is pointed to. A new build gets new object names,
so a reader holding the previous pointer never sees a half-written object; the previous
objects are deleted once the pointer moved. Written first, markers checked after
(:func:`pacs.markers.refusal`), as the preview is.
"""

from __future__ import annotations

import gzip
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pacs import markers
from pacs.clients import Clients
from pacs.dicom import header as dicom_header
from pacs.indexing import catalog, metadata_parts
from pacs.locations import delete_objects

#: Placeholder for the service's base URL in stored BulkDataURIs.
BASE = metadata_parts.BASE
HEAD_BYTES = 256 * 1024
FETCH_THREADS = 8
VERSION = 1


def object_names(uid: str, study: str, series: str, build: str) -> tuple[str, str]:
    """(metadata object, frame index object) of one build."""
    stem = f"previews/{uid}/{study}/{series}"
    return f"{stem}.meta.{build}.json.gz", f"{stem}.frames.{build}.json.gz"


class RangedObject:
    """A seekable read-only file over one object generation: the first bytes given,
    the rest fetched by ranged reads when asked for (header parse, fragment walk)."""

    def __init__(self, blob: Any, size: int, head: bytes) -> None:
        self._blob, self._size, self._head, self._pos = blob, size, head, 0

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        if self._pos >= end:
            return b""
        if end <= len(self._head):
            data = self._head[self._pos:end]
        else:
            data = self._blob.download_as_bytes(start=self._pos, end=end - 1, checksum=None)
        self._pos += len(data)
        return data


def _entry(clients: Clients, doc: dict[str, Any], head: bytes) -> dict[str, Any]:
    """One instance's DICOM JSON and frame table (or the reason there are none)."""
    settings = clients.settings
    blob = clients.storage.bucket(settings.instances_bucket).blob(
        doc["object"], generation=int(doc["generation"]))
    size = int(doc["size"])
    reader = RangedObject(blob, size, head)
    entry: dict[str, Any] = {"g": str(doc["generation"]), "n": doc.get("InstanceNumber")}
    try:
        header, ds = dicom_header.read_header_dataset(
            reader, size, max_header_bytes=settings.header_max_bytes,
            inflate_max_bytes=settings.inflate_max_bytes)
    except dicom_header.HeaderRejected as err:
        return {**entry, "e": err.code}
    return {**entry, **metadata_parts.instance_entry(header, ds, reader, size)}


def _load(bucket: Any, pointer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The previous build's entries by instance key (empty when there is none)."""
    from google.api_core.exceptions import NotFound

    if not pointer.get("frames_object") or not pointer.get("object"):
        return {}
    try:
        index = json.loads(gzip.decompress(bucket.blob(pointer["frames_object"]).download_as_bytes()))
        datasets = json.loads(gzip.decompress(bucket.blob(pointer["object"]).download_as_bytes()))
    except (NotFound, ValueError, OSError):
        return {}
    out = {}
    for key, item in (index.get("instances") or {}).items():
        position = item.get("i")
        if isinstance(position, int) and 0 <= position < len(datasets):
            out[key] = {**item, "d": json.dumps(datasets[position], separators=(",", ":"))}
        elif "e" in item:
            out[key] = item
    return out


def _heads(clients: Clients, docs: list[dict[str, Any]]) -> list[bytes | None]:
    bucket = clients.storage.bucket(clients.settings.instances_bucket)

    def head(doc: dict[str, Any]) -> bytes | None:
        from google.api_core.exceptions import NotFound

        blob = bucket.blob(doc["object"], generation=int(doc["generation"]))
        end = min(int(doc["size"]), HEAD_BYTES) - 1
        try:
            return blob.download_as_bytes(start=0, end=end, checksum=None) if end >= 0 else b""
        except NotFound:
            return None  # this generation is gone: recorded as such, the rest is built

    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        return list(pool.map(head, docs))


def rebuild(clients: Clients, uid: str, study: str, series: str, docs: list[dict[str, Any]],
            computed_at: datetime) -> str:
    """Build the series' metadata and frame index from its instance documents (``docs``:
    ``key``, ``object``, ``generation``, ``size``, ``InstanceNumber``) and point the series
    document at them. Returns ``built``, ``unchanged``, ``stale`` (a later build won),
    ``gone`` or a marker refusal (``erased``, ``study_deleted``)."""
    from google.api_core.exceptions import NotFound

    settings = clients.settings
    bucket = clients.storage.bucket(settings.derived_bucket)
    ref = catalog.series_ref(clients.firestore, study, series)
    snap = ref.get(field_paths=["metadata"])
    if not snap.exists:
        return "gone"
    pointer = (snap.to_dict() or {}).get("metadata") or {}
    # A build of an older layout is not reused: every instance is read again.
    previous = _load(bucket, pointer) if pointer.get("version", 1) == VERSION else {}
    wanted = {d["key"]: d for d in docs if d.get("object") and d.get("generation")}
    if (pointer.get("instances") == len(wanted) and set(previous) == set(wanted)
            and all(previous[k]["g"] == str(d["generation"]) for k, d in wanted.items())):
        return "unchanged"
    fresh = [d for k, d in wanted.items() if previous.get(k, {}).get("g") != str(d["generation"])]
    entries = {k: previous[k] for k in wanted if k not in {d["key"] for d in fresh}}
    # Entries ingest made (the same object generation): no object read, no parse.
    parts = metadata_parts.read_parts(bucket, uid, study, series) if fresh else {}
    made = metadata_parts.entries_of(parts.values())
    for doc in fresh:
        entry = made.get((doc["key"], str(doc["generation"])))
        if entry is not None:
            entries[doc["key"]] = {**entry, "g": str(doc["generation"]),
                                   "n": doc.get("InstanceNumber")}
    fresh = [d for d in fresh if d["key"] not in entries]
    heads = _heads(clients, fresh)
    for doc, head in zip(fresh, heads, strict=True):
        # An object whose recorded generation is gone (deleted, replaced, or never stored:
        # the reconcile job removes such documents and settles again) is an entry with its
        # reason, like an unreadable header: one missing object never holds up the series.
        try:
            entries[doc["key"]] = _entry(clients, doc, head) if head is not None else None
        except NotFound:
            entries[doc["key"]] = None
        if entries[doc["key"]] is None:
            entries[doc["key"]] = {"g": str(doc["generation"]), "n": doc.get("InstanceNumber"),
                                   "e": "object_missing"}
    outcome = _write(clients, uid, study, series, ref, pointer, entries, computed_at)
    if outcome == "built":
        built = {k: str(d["generation"]) for k, d in wanted.items()}
        delete_objects(bucket, metadata_parts.used(parts, built))
    return outcome


def _order(item: tuple[str, dict[str, Any]]) -> tuple:
    number = item[1].get("n")
    return (not isinstance(number, int), number if isinstance(number, int) else 0,
            item[1].get("sop") or "", item[0])


def _write(clients: Clients, uid: str, study: str, series: str, ref: Any,
           pointer: dict[str, Any], entries: dict[str, dict[str, Any]],
           computed_at: datetime) -> str:
    from google.api_core.exceptions import FailedPrecondition, NotFound

    bucket = clients.storage.bucket(clients.settings.derived_bucket)
    datasets, index = [], {}
    for key, entry in sorted(entries.items(), key=_order):
        item = {k: v for k, v in entry.items() if k != "d"}
        if "d" in entry:
            item["i"] = len(datasets)
            datasets.append(entry["d"])
        index[key] = item
    meta_bytes = gzip.compress(("[" + ",".join(datasets) + "]").encode(), 6)
    frames_bytes = gzip.compress(json.dumps({"version": VERSION, "instances": index},
                                            separators=(",", ":")).encode(), 6)
    build = f"{int(computed_at.timestamp() * 1000):013d}-{secrets.token_hex(4)}"
    meta_name, frames_name = object_names(uid, study, series, build)
    meta_blob, frames_blob = bucket.blob(meta_name), bucket.blob(frames_name)
    meta_blob.upload_from_string(meta_bytes, content_type="application/gzip",
                                 if_generation_match=0)
    frames_blob.upload_from_string(frames_bytes, content_type="application/gzip",
                                   if_generation_match=0)
    update = {"metadata": {"object": meta_name, "generation": str(meta_blob.generation),
                           "frames_object": frames_name,
                           "frames_generation": str(frames_blob.generation),
                           "instances": len(index), "datasets": len(datasets),
                           "version": VERSION,
                           "built_at": computed_at}}
    outcome = None
    for attempt in range(20):
        snap = ref.get(field_paths=["metadata"])
        current = (snap.to_dict() or {}).get("metadata") or {} if snap.exists else None
        if current is None:
            outcome = "gone"
        elif current.get("built_at") is not None and current["built_at"] > computed_at:
            outcome = "stale"
        if outcome:
            break
        try:
            ref.update(update, option=clients.firestore.write_option(
                last_update_time=snap.update_time))
            pointer = current
            break
        except (FailedPrecondition, NotFound):
            time.sleep(min(0.5, 0.01 * 2**attempt))
    else:
        outcome = "stale"
    outcome = outcome or markers.refusal(clients.firestore, clients.settings.hash_key, uid,
                                         study)
    old = [meta_name, frames_name] if outcome else [
        n for n in (pointer.get("object"), pointer.get("frames_object")) if n]
    delete_objects(bucket, old)
    return outcome or "built"
