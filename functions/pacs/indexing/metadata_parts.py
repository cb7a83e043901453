"""Series metadata entries made where the header is parsed, gathered when the series settles.

An instance's entry in the series' WADO-RS metadata (:mod:`pacs.indexing.series_metadata`)
is its DICOM JSON (:func:`pacs.dicom.json_header.dataset_json`) and frame table. Ingest has
the parsed header and the stored bytes in hand, so it makes the entry there
(:func:`instance_entry`) and writes a series' entries, about 1 MiB of them at a time
(:mod:`pacs.ingest.index_writer`), as one gzipped *part* object beside the series' other
derived objects:
``previews/{uid}/{study}/{series}.part.{upload}.{first member}.json.gz`` (keyed names, no
PHI; :func:`part_name`). Settling the series reads its parts (:func:`read_parts`) instead of
downloading and parsing every new instance object, and deletes the parts its build used.

Privacy: a part holds what the metadata object holds (header elements, no bulk data), under
the study's prefix in the derived bucket, so study deletion and erasure remove it with the
previews; ingest writes it before a transaction that checks the markers, or checks them
after the last parts of a run, and deletes it when they refuse (written first, checked
after, undone: :mod:`pacs.markers`); the
reconcile job removes any part left behind (a crash, a race) after its grace period, since
no series document names it. A part is a cache: an entry missing, unreadable or of another
object generation makes settle read that instance's object as before.
"""

from __future__ import annotations

import gzip
import json
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pacs.dicom.frames import FramesUnavailable, frame_table
from pacs.dicom.json_header import BASE as INSTANCE_BASE
from pacs.dicom.json_header import dataset_json

#: Placeholder for the service's base URL in stored BulkDataURIs (replaced when served).
BASE = "%%BASE%%"
VERSION = 1
READ_THREADS = 8
#: Largest entry ingest keeps (DICOM JSON characters, plus 32 per frame of its frame table):
#: a CT header is about 4-11 KB of JSON; headers may reach ``PACS_HEADER_MAX_BYTES``.
MAX_ENTRY_CHARS = 256 * 1024


def instance_entry(header: Any, ds: Any, fileobj: Any, size: int) -> dict[str, Any]:
    """One instance's entry: SOP Instance UID (``sop``), DICOM JSON (``d``, a string, its
    BulkDataURIs under :data:`BASE`) and frame table (``f``) or why there is none (``fe``).
    ``header`` and ``ds`` come from :func:`pacs.dicom.header.read_header_dataset` of
    ``fileobj`` (``size`` bytes, read only for encapsulated pixel data). pydicom's warnings
    (which can quote values) are silenced while it runs."""
    entry: dict[str, Any] = {"sop": header.sop_instance_uid}
    path = (f"{BASE}/studies/{header.study_instance_uid}/series/"
            f"{header.series_instance_uid}/instances/{header.sop_instance_uid}/")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entry["d"] = json.dumps(dataset_json(ds, header), separators=(",", ":")).replace(
            INSTANCE_BASE, path)
        try:
            entry["f"] = frame_table(header, ds, fileobj, size).to_json()
        except FramesUnavailable as err:
            entry["fe"] = err.code
    return entry


def part_prefix(uid: str, study: str, series: str) -> str:
    """Where a series' parts are: every object name starting so is one."""
    return f"previews/{uid}/{study}/{series}.part."


def part_name(uid: str, study: str, series: str, upload_id: str, first: int) -> str:
    """The part of the batch of upload ``upload_id`` starting at member ``first``: the same
    name when a redelivery commits the same batch again."""
    return f"{part_prefix(uid, study, series)}{upload_id}.{first:06d}.json.gz"


def encode(entries: dict[str, dict[str, Any]]) -> bytes:
    """A part's bytes: entries by instance key, each with its object generation ``g``."""
    return gzip.compress(json.dumps({"version": VERSION, "entries": entries},
                                    separators=(",", ":")).encode(), 1)


def write_parts(bucket: Any, uid: str, upload_id: str,
                groups: dict[tuple[str, str], dict[int, tuple[str, dict[str, Any]]]]) -> list[
                    tuple[str, str]]:
    """Write one part per (study, series) of ``groups`` (member index → (instance key,
    entry with ``g``)). Returns (study, object name) of each part written."""
    written = []
    for (study, series), members in sorted(groups.items()):
        name = part_name(uid, study, series, upload_id, min(members))
        bucket.blob(name).upload_from_string(
            encode({key: entry for key, entry in members.values()}),
            content_type="application/gzip")
        written.append((study, name))
    return written


def read_parts(bucket: Any, uid: str, study: str, series: str) -> dict[str, dict[str, Any]]:
    """The series' parts by object name, each its entries by instance key. A part deleted
    meanwhile (a concurrent settle used it) or unreadable is left out."""
    from google.api_core.exceptions import NotFound

    names = [b.name for b in bucket.list_blobs(prefix=part_prefix(uid, study, series))]

    def read(name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(gzip.decompress(bucket.blob(name).download_as_bytes()))
        except (NotFound, ValueError, OSError):
            return None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return None
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else None

    if not names:
        return {}
    with ThreadPoolExecutor(min(READ_THREADS, len(names))) as pool:
        found = dict(zip(names, pool.map(read, names), strict=True))
    return {name: entries for name, entries in found.items() if entries is not None}


def used(parts: dict[str, dict[str, Any]], generations: dict[str, str]) -> list[str]:
    """The parts every entry of which is in a build (``generations``: instance key → object
    generation built): those a successful build may delete."""
    return [name for name, entries in parts.items()
            if all(isinstance(e, dict) and generations.get(key) == str(e.get("g"))
                   for key, e in entries.items())]


def entries_of(parts: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every part's entries by (instance key, object generation)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for entries in parts:
        for key, entry in entries.items():
            if isinstance(entry, dict) and "g" in entry:
                out[(key, str(entry["g"]))] = entry
    return out


def safe_entry(header: Any, ds: Any, fileobj: Any, size: int) -> dict[str, Any] | None:
    """:func:`instance_entry`, or None when pydicom fails on this header in a way the
    parse did not, or the entry is larger than :data:`MAX_ENTRY_CHARS` (ingest holds a
    batch's entries until it commits: bounded memory). Settle then reads the object, as for
    any instance without an entry. ``fileobj`` is left where it was."""
    at = fileobj.tell()
    try:
        entry = instance_entry(header, ds, fileobj, size)
    except Exception:  # noqa: BLE001 - a cache miss, never a failed ingest
        return None
    finally:
        fileobj.seek(at)
    frames = len((entry.get("f") or {}).get("frames") or ())
    return entry if len(entry["d"]) + 32 * frames <= MAX_ENTRY_CHARS else None
