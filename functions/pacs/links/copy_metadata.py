"""What DICOMweb serves of a de-identified copy (:mod:`pacs.links.deidentified`), built while
the copy is made, from the copy's own bytes (never the original's).

* Per copied instance, :func:`entry`: its DICOM JSON as ``/metadata`` serves it and its frame
  table, in the layout of a series' precomputed build (:mod:`pacs.indexing.series_metadata`),
  so :mod:`pacs.dicomweb.metadata` and :mod:`pacs.dicomweb.frames` read a copy's build as
  they read a study's.
* Per copy series, :meth:`CopyIndex.write`: the gzipped metadata array and frame index under
  the copy's prefix (``.../meta/{series_id}.json.gz``, ``.../frames/{series_id}.json.gz``),
  deleted with the copy.
* The copy's study and series attributes for QIDO-RS, from the de-identified headers: the
  share document's ``copy_index`` (``study``: the study fields and search keys,
  ``series``: per series id its fields, ``instance_count`` and ``metadata`` pointer).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pacs.dicom import header as dicom_header
from pacs.indexing import catalog, metadata_parts, search_keys, series_metadata


@dataclass
class Entry:
    """One copied instance: its header fields, DICOM JSON (``d``) and frame index item."""

    fields: dict[str, Any]
    json_text: str | None
    frames: dict[str, Any]

    def stored(self) -> str:
        """What the instance's copy document keeps of it, for the copy's last run
        (:meth:`CopyIndex.from_documents`); a DICOM JSON too long for a document is left
        out of the metadata (its frames are still found from the object)."""
        keep = {k: self.fields.get(k) for k in (*catalog.STUDY_FIELDS, *catalog.SERIES_FIELDS)}
        text = self.json_text if self.json_text and len(self.json_text) <= MAX_STORED else None
        frames = self.frames if text or self.json_text is None else {**self.frames, "e": "long"}
        # One JSON text: Firestore holds no arrays of arrays (frame tables are).
        return json.dumps({"fields": keep, "meta": text, "frame": frames},
                          separators=(",", ":"))


def entry(settings: Any, data: bytes) -> Entry:
    """The metadata and frame table of one copied instance (its de-identified bytes)."""
    try:
        header, ds = dicom_header.read_header_dataset(
            data, len(data), max_header_bytes=settings.header_max_bytes,
            inflate_max_bytes=settings.inflate_max_bytes)
    except dicom_header.HeaderRejected as err:
        return Entry({}, None, {"e": err.code})
    fields = dict(header.fields)
    # The same entry ingest makes for a stored instance (metadata_parts), its DICOM JSON
    # kept apart for the copy document.
    item = metadata_parts.instance_entry(header, ds, io.BytesIO(data), len(data))
    text = item.pop("d")
    item["n"] = fields.get("InstanceNumber")
    return Entry(fields, text, item)


#: The longest DICOM JSON kept in an instance's copy document (Firestore's limit is 1 MiB).
MAX_STORED = 600_000


@dataclass
class _Series:
    fields: dict[str, Any]
    items: list[tuple[str, Entry, str]] = field(default_factory=list)


@dataclass
class CopyIndex:
    """The copy's study, its series and their instances' entries, gathered while copying."""

    study: dict[str, Any] = field(default_factory=dict)
    series: dict[str, _Series] = field(default_factory=dict)

    def add(self, series_id: str, instance_id: str, generation: str, item: Entry) -> None:
        """Record one copied instance (its object's ``generation``) in its series."""
        if not self.study and item.fields:
            self.study = {k: item.fields.get(k) for k in catalog.STUDY_FIELDS}
        series = self.series.setdefault(series_id, _Series(
            {k: item.fields.get(k) for k in catalog.SERIES_FIELDS}))
        series.items.append((instance_id, item, generation))

    @classmethod
    def from_documents(cls, snaps: Any) -> CopyIndex:
        """The index of every copied instance, from their ``share_copies`` documents."""
        index = cls()
        for snap in sorted(snaps, key=lambda s: s.id):
            doc = snap.to_dict() or {}
            stored = json.loads(doc.get("entry") or "{}")
            index.add(doc["series_id"], snap.id, str(doc["generation"]), Entry(
                stored.get("fields") or {}, stored.get("meta"), stored.get("frame") or {}))
        return index

    def _ordered(self, series: _Series) -> Iterator[tuple[str, Entry, str]]:
        def order(triple: tuple[str, Entry, str]) -> tuple:
            number = triple[1].frames.get("n")
            return (not isinstance(number, int), number if isinstance(number, int) else 0,
                    triple[1].frames.get("sop") or "", triple[0])
        return iter(sorted(series.items, key=order))

    def write(self, bucket: Any, prefix: str, owner: str, now: datetime
              ) -> tuple[dict[str, Any], int]:
        """Write each series' metadata and frame index under ``prefix``; return the share
        document's ``copy_index`` and the bytes written (they count toward the quota with
        the copy)."""
        out: dict[str, Any] = {}
        modalities = []
        written = 0
        for series_id, series in self.series.items():
            datasets, index = [], {}
            for instance_id, item, generation in self._ordered(series):
                frames = {**item.frames, "g": generation}
                if item.json_text is not None:
                    frames["i"] = len(datasets)
                    datasets.append(item.json_text)
                index[instance_id] = frames
            meta_bytes = gzip.compress(("[" + ",".join(datasets) + "]").encode())
            frames_bytes = gzip.compress(json.dumps(
                {"version": series_metadata.VERSION, "instances": index},
                separators=(",", ":")).encode())
            meta = _create(bucket, f"{prefix}meta/{series_id}.json.gz", meta_bytes)
            frames_blob = _create(bucket, f"{prefix}frames/{series_id}.json.gz", frames_bytes)
            written += len(meta_bytes) + len(frames_bytes)
            modalities.append(series.fields.get("Modality"))
            out[series_id] = {**series.fields, "owner": owner,
                              "instance_count": len(series.items),
                              "metadata": {"object": meta.name,
                                           "generation": str(meta.generation),
                                           "frames_object": frames_blob.name,
                                           "frames_generation": str(frames_blob.generation),
                                           "instances": len(index),
                                           "version": series_metadata.VERSION}}
        study = catalog.study_document(self.study, owner, now)
        mods = search_keys.modality_codes(modalities)
        study.update(series_count=len(out), instance_count=sum(
            s["instance_count"] for s in out.values()), modalities=mods,
            search=search_keys.study_search_keys(self.study, mods))
        return {"study": study, "series": out}, written


def _create(bucket: Any, name: str, data: bytes) -> Any:
    """Write an object create-only; when an earlier delivery of the copy's last run wrote it
    already, that one stands (its generation is what the share's index names)."""
    from google.api_core.exceptions import PreconditionFailed

    blob = bucket.blob(name)
    try:
        blob.upload_from_string(data, content_type="application/gzip", if_generation_match=0)
    except PreconditionFailed:
        blob.reload()
    return blob
