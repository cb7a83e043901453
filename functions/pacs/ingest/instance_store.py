"""Storing one DICOM instance canonically: preamble zeroed, checksummed, keyed name,
create-only write. Same SOP and bytes → duplicate; same SOP, other bytes → conflict."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from typing import IO, Any

from pacs import ids
from pacs.dicom import header as dicom_header
from pacs.dicom import seal
from pacs.indexing import catalog
from pacs.ingest.object_upload import create_object
from pacs.results import CONFLICT, DUPLICATE, STORED
from pacs.settings import Settings

SPOOL_IN_MEMORY = 32 * 1024**2
CHUNK = 1024**2


class MemberTooLarge(Exception):
    """More bytes came out of a stream than its bound allows."""


@dataclass(frozen=True)
class StoredInstance:
    status: str
    study_key: str
    series_key: str
    instance_key: str
    object_name: str
    sha256: str
    size: int
    # The object as stored (name, generation, size, crc32c, metadata) when ``status`` is
    # ``stored``: the instance document is built from it without another read.
    blob: Any = None


class SpoolBudget:
    """The bytes of archive members spooled at once, bounded (``Settings.ingest_spool_bytes``).

    A member reserves its declared size (the stream never yields more) before it is spooled
    and releases it once stored or refused; the reader waits while the budget is spent. A
    member larger than the whole budget waits until nothing else is in flight and then runs
    alone. Counting members instead would let a few 1 GiB members fill ``/tmp``, which is
    memory on Cloud Functions, and kill the function on every redelivery."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._used = 0
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, size: int) -> int:
        """Wait until ``size`` bytes fit; returns the amount to :meth:`release`."""
        amount = min(max(size, 1), self._capacity)
        with self._cond:
            while self._used + amount > self._capacity:
                self._cond.wait()
            self._used += amount
            self.peak = max(self.peak, self._used)
        return amount

    def release(self, amount: int) -> None:
        with self._cond:
            self._used -= amount
            self._cond.notify_all()


def spool(stream: IO[bytes], max_bytes: int) -> tuple[IO[bytes], int, str]:
    """Copy a stream to a spooled temp file with the DICOM preamble zeroed.

    Returns the file (rewound), its size and the SHA-256 of the stored bytes. Disk takes
    over past 32 MiB, so a large member never sits whole in memory.
    """
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    digest = hashlib.sha256()
    size = 0
    first = True
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        if first:
            # The preamble can carry an executable (CVE-2019-11687); zero it before storing.
            while len(chunk) < 132:
                more = stream.read(CHUNK)
                if not more:
                    break
                chunk += more
            chunk = dicom_header.zero_preamble(chunk)
            first = False
        size += len(chunk)
        if size > max_bytes:
            out.close()
            raise MemberTooLarge(f"stream exceeds {max_bytes} bytes")
        digest.update(chunk)
        out.write(chunk)
    out.seek(0)
    return out, size, digest.hexdigest()


def store_instance(storage: Any, settings: Settings, uid: str, upload_id: str, member: int,
                   data: IO[bytes], size: int, sha256: str,
                   header: dicom_header.InstanceHeader, keys: ids.InstanceKeys,
                   indexed_here: bool = False) -> StoredInstance:
    """Write the instance create-only; classify an existing object as ours, duplicate or conflict.

    The object carries its parsed header sealed in metadata (:mod:`pacs.dicom.seal`), so
    the indexer need not read it back. ``keys`` are the instance's keyed ids
    (:func:`pacs.ids.instance_keys`). The caller creates the series and study documents
    first (:class:`pacs.indexing.catalog.ParentDocuments`). With ``indexed_here`` the
    caller writes the instance document itself (:mod:`pacs.ingest.index_writer`), and the
    object is tagged so its finalize event costs the indexer nothing
    (:func:`pacs.indexing.catalog.indexed_by_ingest`)."""
    from google.api_core.exceptions import PreconditionFailed

    key = settings.hash_key
    fields = header.fields
    study, series, instance = keys
    name = ids.instance_object(uid, study, instance)
    metadata = {"owner": uid, "upload_id": upload_id, "member": str(member), "sha256": sha256,
                "series_key": series}
    token = seal.seal(key, name, catalog.sealed_fields(fields, header.is_image))
    if token:
        metadata[seal.METADATA_KEY] = token
    if indexed_here:
        metadata[catalog.INDEXED_BY_INGEST] = catalog.ingest_tag(key, name)
    status = STORED
    try:
        blob = create_object(storage, settings.instances_bucket, name, data, size,
                             "application/dicom", metadata)
    except PreconditionFailed:
        existing = storage.bucket(settings.instances_bucket).get_blob(name)
        meta = (existing.metadata or {}) if existing is not None else {}
        if meta.get("upload_id") == upload_id and meta.get("member") == str(member):
            status = STORED  # our own earlier attempt (redelivery or a concurrent duplicate)
            blob = existing
        elif meta.get("sha256") == sha256:
            status = DUPLICATE
        else:
            status = CONFLICT
    return StoredInstance(status, study, series, instance, name, sha256, size,
                          blob if status == STORED else None)
