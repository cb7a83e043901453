"""An export carried across runs of the ``privacy-jobs`` job: one ZIP archive, however long
it takes to write.

A run writes what fits in its time (``Settings.export_run_seconds``) as one *part*: the local
entries of the members it wrote, numbered on from where the archive stands, so the bytes of
all parts one after the other are the archive's entries. Each part is appended to
``exports/{uid}/{request}.run/partial`` with a Storage compose (two sources: the archive so
far and the new part), and its central-directory records (zipfile writes them; they are
taken off the end of the part, not uploaded with it) are kept beside it. The run saves where
it stopped (location, last object name, size so far, counts, the integrity check's state) in
``.run/state.json`` and queues the next run. The last run writes the README, checksums and
manifest, then every part's central-directory records and the end records (ZIP64), and
composes them onto the archive as ``exports/{uid}/{request}.zip``; the run objects go.

A run that dies before saving its state leaves the previous state: the next delivery
rewrites that part (a part's objects are overwritten; the composed archive only ever grows
by a part whose state was saved after it). Everything lives under ``exports/{uid}/``, which
erasure and the retention purge cover.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import time
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO, Any

from pacs import log_events
from pacs.clients import Clients
from pacs.json_values import plain
from pacs.locations import delete_objects
from pacs.privacy import export, personal_data
from pacs.privacy import requests as privacy_requests
from pacs.privacy.personal_data import Location, Subject

CD_SIGNATURE = b"PK\x01\x02"
CD_HEADER = struct.Struct("<4s4B4HL2L5H2L")  # zipfile.structCentralDir


class PartSink:
    """The part's upload stream as zipfile sees it: ``tell()`` counts from the archive's
    start (``base``), so every offset zipfile records is the archive's; after
    :meth:`divert`, bytes go to a buffer instead (the central directory zipfile writes)."""

    def __init__(self, raw: IO[bytes], base: int) -> None:
        self._raw, self.base, self.size = raw, base, 0
        self._diverted: io.BytesIO | None = None

    def write(self, data: bytes) -> int:
        (self._diverted or self._raw).write(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.base + self.size

    def flush(self) -> None:
        pass

    def divert(self) -> int:
        """From now on keep the bytes here; returns the part's size up to this point."""
        self._diverted = io.BytesIO()
        return self.size

    @property
    def diverted(self) -> bytes:
        return self._diverted.getvalue() if self._diverted else b""


def central_records(tail: bytes) -> tuple[bytes, int]:
    """The central-directory records at the start of what zipfile wrote on close, and how
    many (the end records after them are left: the last run writes the archive's own)."""
    at = count = 0
    while tail[at:at + 4] == CD_SIGNATURE:
        fields = CD_HEADER.unpack_from(tail, at)
        at += CD_HEADER.size + fields[12] + fields[13] + fields[14]
        count += 1
    return tail[:at], count


def end_records(count: int, size: int, offset: int) -> bytes:
    """ZIP64 end record and locator, then the end record (as zipfile writes them)."""
    z64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + size, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                      min(size, 0xFFFFFFFF), min(offset, 0xFFFFFFFF), 0)
    return z64 + locator + end


class Run:
    """One run's view of the export: the bucket, the names, the saved state."""

    def __init__(self, clients: Clients, uid: str, request_id: str) -> None:
        self.clients, self.uid, self.request_id = clients, uid, request_id
        self.bucket = clients.storage.bucket(clients.settings.derived_bucket)
        self.prefix = f"exports/{uid}/{request_id}.run/"
        self.final = export.archive_object(uid, request_id)

    def name(self, what: str) -> str:
        return self.prefix + what

    def load(self) -> dict[str, Any] | None:
        blob = self.bucket.get_blob(self.name("state.json"))
        return json.loads(blob.download_as_bytes()) if blob else None

    def save(self, state: dict[str, Any]) -> None:
        self.bucket.blob(self.name("state.json")).upload_from_string(
            json.dumps(state), content_type="application/json")

    def writer(self, what: str) -> IO[bytes]:
        return self.bucket.blob(self.name(what)).open("wb", chunk_size=export.UPLOAD_CHUNK,
                                                      ignore_flush=True)

    def put(self, what: str, data: bytes) -> None:
        self.bucket.blob(self.name(what)).upload_from_string(data)

    def get(self, what: str) -> bytes:
        return self.bucket.blob(self.name(what)).download_as_bytes()

    def append(self, part: str, first: bool) -> None:
        """The archive so far, then ``part`` (a compose; the part object is then deleted)."""
        partial = self.bucket.blob(self.name("partial"))
        sources = [self.bucket.blob(self.name(part))]
        if not first:
            sources.insert(0, partial)
        partial.compose(sources)
        delete_objects(self.bucket, [self.name(part)])

    def finish(self, tail: str) -> None:
        """The archive: everything appended so far, then ``tail``."""
        archive = self.bucket.blob(self.final)
        archive.content_type = "application/zip"
        archive.compose([self.bucket.blob(self.name("partial")),
                         self.bucket.blob(self.name(tail))])

    def clean(self) -> None:
        names = [b.name for b in self.clients.storage.list_blobs(self.bucket, prefix=self.prefix)]
        delete_objects(self.bucket, names)


def fresh_state() -> dict[str, Any]:
    return {"location": 0, "after": None, "parts": 0, "size": 0, "entries": 0, "counts": {},
            "files": 0, "documents": 0, "integrity": None, "readme": False}


def write_part(subject: Subject, run: Any, state: dict[str, Any], now: datetime,
               out_of_time: Callable[[], bool],
               locations: tuple[Location, ...] = personal_data.LOCATIONS) -> bool:
    """Write the next part and append it; returns True once every location is written.
    ``run`` is a :class:`Run` (or anything with its ``writer``/``put``/``append``)."""
    stamp = now.timetuple()[:6]
    part = f"part-{state['parts'] + 1:05d}"
    integrity = export.Integrity.from_state(subject, state["integrity"])
    writer = run.writer(part)
    sink = PartSink(writer, state["size"])
    checksums: list[str] = []
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        if not state["readme"]:
            zf.writestr(export.info("README.txt", stamp, zipfile.ZIP_DEFLATED), export.README)
            state["readme"] = True
        moved = False  # at least one location (or object) per run, then on time
        while state["location"] < len(locations) and not (moved and out_of_time()):
            moved = True
            location = locations[state["location"]]
            if location.export:
                done = export.write_location(zf, subject, location, stamp, state, checksums,
                                             integrity, out_of_time)
                if not done:
                    break
            state["location"] += 1
            state["after"] = None
        part_size = sink.divert()
    writer.close()
    records, count = central_records(sink.diverted)
    run.put(f"{part}.cd", records)
    run.put(f"{part}.sha", "".join(checksums).encode())
    run.append(part, first=state["parts"] == 0)
    state.update(parts=state["parts"] + 1, size=state["size"] + part_size,
                 entries=state["entries"] + count, integrity=integrity.to_state())
    return state["location"] >= len(locations)


def finish_archive(subject: Subject, run: Any, state: dict[str, Any], now: datetime
                   ) -> dict[str, Any]:
    """The checksums and manifest, the archive's central directory and end records."""
    stamp = now.timetuple()[:6]
    report = export.Integrity.from_state(subject, state["integrity"]).finish()
    writer = run.writer("tail")
    sink = PartSink(writer, state["size"])
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        with zf.open(export.info("checksums.sha256", stamp, zipfile.ZIP_DEFLATED), "w",
                     force_zip64=True) as out:
            for n in range(1, state["parts"] + 1):
                out.write(run.get(f"part-{n:05d}.sha"))
        manifest = {"format_version": export.FORMAT_VERSION, "request_id": run.request_id,
                    "uid": subject.uid, "generated_at": plain(now), "counts": state["counts"],
                    "files": state["files"], "documents": state["documents"],
                    "integrity": report, "runs": state["parts"]}
        zf.writestr(export.info("manifest.json", stamp, zipfile.ZIP_DEFLATED),
                    json.dumps(manifest, indent=2))
        tail_size = sink.divert()
    records, count = central_records(sink.diverted)
    directory_at = state["size"] + tail_size
    directory = b"".join(run.get(f"part-{n:05d}.cd") for n in range(1, state["parts"] + 1))
    directory += records
    writer.write(directory)
    writer.write(end_records(state["entries"] + count, len(directory), directory_at))
    writer.close()
    run.finish("tail")
    return {"counts": state["counts"], "files": state["files"],
            "documents": state["documents"], "integrity": report}


def _sha256(blob: Any) -> str:
    digest = hashlib.sha256()
    with blob.open("rb", chunk_size=export.CHUNK) as reader:
        while chunk := reader.read(export.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_export(clients: Clients, uid: str, request_id: str, now: datetime,
                 seconds: float) -> dict[str, Any] | None:
    """One run: the next part (and, when all is written, the archive). Returns the
    request's ``result`` when the archive is done, None when another run is needed."""
    settings = clients.settings
    subject = Subject(clients, uid)
    run = Run(clients, uid, request_id)
    state = run.load() or fresh_state()
    started = time.monotonic()

    def out_of_time() -> bool:
        return time.monotonic() - started >= seconds

    # write_location writes at least one object per run before it looks at the time, so a
    # short budget still moves the export on.
    done = write_part(subject, run, state, now, out_of_time)
    run.save(state)
    if not done:
        return None
    summary = finish_archive(subject, run, state, now)
    stored = run.bucket.get_blob(run.final)
    sha256 = _sha256(stored)
    run.clean()
    written = stored.time_created or privacy_requests.utc_now()
    integrity = dict(summary["integrity"])
    for key in ("mismatched", "unrecorded", "missing"):  # all of them are in the manifest
        integrity[key] = integrity[key][:export.RESULT_LIST_MAX]
    return {"object": run.final, "generation": str(stored.generation), "size": int(stored.size),
            "sha256": sha256, **summary, "integrity": integrity, "runs": state["parts"],
            "available_until": written + timedelta(seconds=settings.export_link_seconds)}


def run_export_request(clients: Clients, uid: str, request_id: str,
                       now: Callable[[], datetime] = privacy_requests.utc_now) -> str:
    """The job of one export request (idempotent: a finished request is left alone). A run
    that stops on time queues the next one (``continued``)."""
    from google.cloud import firestore as gfs

    from pacs.privacy import erasure

    fs, settings = clients.firestore, clients.settings
    snap = privacy_requests.request_ref(fs, request_id).get()
    doc = snap.to_dict() if snap.exists else None
    if doc is None or doc.get("owner") != uid or doc.get("type") != "export":
        return "gone"
    if doc.get("status") in privacy_requests.FINAL:
        return "duplicate"
    run = Run(clients, uid, request_id)
    if erasure.pending(fs, settings, uid):
        run.clean()
        privacy_requests.advance(fs, request_id, privacy_requests.REJECTED, now(),
                                 reason="erasure_in_progress")
        return "rejected"
    if int(doc.get("attempts") or 0) >= settings.privacy_job_max_attempts:
        run.clean()
        privacy_requests.advance(fs, request_id, privacy_requests.REJECTED, now(),
                                 reason="export_failed")
        log_events.emit("ERROR", "export_failed", "export gave up", uid=uid, request=request_id)
        return "rejected"
    # Attempts count failed runs: a run that ends (continued or done) sets them back to 0.
    privacy_requests.request_ref(fs, request_id).update({"attempts": gfs.Increment(1)})
    if doc.get("status") == privacy_requests.RECEIVED:
        privacy_requests.advance(fs, request_id, privacy_requests.IN_PROGRESS, now())
    result = build_export(clients, uid, request_id, now(), settings.export_run_seconds)
    if erasure.pending(fs, settings, uid):  # an erasure started while the archive was built
        run.clean()
        delete_objects(run.bucket, [run.final])
        privacy_requests.advance(fs, request_id, privacy_requests.REJECTED, now(),
                                 reason="erasure_in_progress")
        return "rejected"
    if result is None:
        privacy_requests.request_ref(fs, request_id).update(
            {"attempts": 0, "updated_at": now(), "export_runs": gfs.Increment(1)})
        privacy_requests.publish_job(clients, request_id, uid, "export")
        log_events.emit("INFO", "export_continued", "export part written; next run queued",
                        uid=uid, request=request_id)
        return "continued"
    privacy_requests.advance(fs, request_id, privacy_requests.COMPLETED, now(), result=result)
    log_events.emit("INFO", "export_completed", "export archive ready", uid=uid,
                    request=request_id, size=result["size"], files=result["files"],
                    documents=result["documents"], runs=result["runs"],
                    mismatched=len(result["integrity"]["mismatched"]))
    return "exported"
