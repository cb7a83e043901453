"""``on_instance_finalized``'s domain logic: read a canonical instance's header and write
its instance document, creating the series and study documents the first time.

Hot documents: a 3,000-slice series would write its study and series documents 3,000 times
if every instance updated counts there, past Firestore's sustained ~1 write/s per document.
So each instance writes only its own document; study and series documents are created once
per series by ingest before the objects are stored (``create`` fails harmlessly when they
exist), and their counts, modalities and sizes are recomputed from the instance documents
by the settle step, once per upload and series. Ingest also seals the parsed header into
each object's metadata (:mod:`pacs.dicom.seal`), so indexing an instance it stored is one
metadata read and one document write, with no download or parse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pacs import ids, log_events, markers
from pacs.clients import Clients
from pacs.dicom import seal
from pacs.events import StorageObjectEvent
from pacs.indexing import search_keys

STUDY_FIELDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription",
                "ReferringPhysicianName", "ModalitiesInStudy")
SERIES_FIELDS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
                 "BodyPartExamined")
INSTANCE_FIELDS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber", "Rows", "Columns",
                   "NumberOfFrames", "TransferSyntaxUID", "ImagePositionPatient",
                   "ImageOrientationPatient", "SliceLocation")


def parse_instance_object(name: str) -> tuple[str, str, str] | None:
    parts = name.split("/")
    if len(parts) != 3 or not parts[2].endswith(".dcm"):
        return None
    return parts[0], parts[1], parts[2][:-4]


def study_ref(firestore: Any, study: str) -> Any:
    return firestore.collection("studies").document(study)


def series_ref(firestore: Any, study: str, series: str) -> Any:
    return study_ref(firestore, study).collection("series").document(series)


def instance_ref(firestore: Any, study: str, series: str, instance: str) -> Any:
    return series_ref(firestore, study, series).collection("instances").document(instance)


def study_document(fields: dict[str, Any], uid: str, now: datetime) -> dict[str, Any]:
    """A new study document: its DICOM fields, empty counts (the settle step fills them) and
    its search keys (:mod:`pacs.indexing.search_keys`). Pure, so tests seed studies with it."""
    doc: dict[str, Any] = {k: fields.get(k) for k in STUDY_FIELDS}
    doc.update(owner=uid, created_at=now, updated_at=now, series_count=0, instance_count=0,
               total_bytes=0, modalities=[], preview=None,
               search=search_keys.study_search_keys(fields))
    return doc


def series_document(fields: dict[str, Any], uid: str, study: str, now: datetime
                    ) -> dict[str, Any]:
    """A new series document (counts and preview are filled by the settle step)."""
    doc: dict[str, Any] = {k: fields.get(k) for k in SERIES_FIELDS}
    doc.update(owner=uid, study_key=study, created_at=now, instance_count=0,
               preview={"status": "pending"})
    return doc


def instance_document(fields: dict[str, Any], uid: str, study: str, series: str, blob: Any,
                      is_image: bool, now: datetime) -> dict[str, Any]:
    """An instance document: its DICOM fields and where its object is (``blob``: name,
    generation, size, crc32c and metadata). Pure, so the bench writes the same shape."""
    meta = blob.metadata or {}
    doc: dict[str, Any] = {k: fields.get(k) for k in INSTANCE_FIELDS}
    doc.update(owner=uid, study_key=study, series_key=series, object=blob.name,
               generation=str(blob.generation), size=int(blob.size), sha256=meta.get("sha256"),
               crc32c=blob.crc32c, upload_id=meta.get("upload_id"), is_image=bool(is_image),
               indexed_at=now)
    return doc


def sealed_fields(fields: dict[str, Any], is_image: bool) -> dict[str, Any]:
    """What ingest seals into an instance object for the indexer (:mod:`pacs.dicom.seal`):
    the instance document's DICOM fields and the series it belongs to."""
    return {"fields": {k: fields.get(k) for k in (*INSTANCE_FIELDS, "SeriesInstanceUID")},
            "is_image": bool(is_image)}


# Ingest writes the instance document of every object it stores itself, in the same
# transaction as the object's per-file result (pacs.ingest.index_writer), and tags the object
# with this metadata key, so the indexer recognises it from the finalize event alone.
INDEXED_BY_INGEST = "pacs-indexed-by-ingest"


def ingest_tag(key: bytes, object_name: str) -> str:
    """The tag ingest puts on an object whose document it writes: a keyed hash of the name,
    so a tag copied onto another object, or made without the key, is not recognised."""
    return ids.keyed_hash(key, "indexed by ingest", object_name)


def indexed_by_ingest(key: bytes, object_name: str, metadata: Any) -> bool:
    """True when ``metadata`` (an object's, as its finalize event carries it) holds ingest's
    tag for ``object_name``: ingest writes its document, nothing to read or write here."""
    import hmac

    token = (metadata or {}).get(INDEXED_BY_INGEST) if isinstance(metadata, dict) else None
    return isinstance(token, str) and hmac.compare_digest(token, ingest_tag(key, object_name))


def create_parents(firestore: Any, key: bytes, fields: dict[str, Any], uid: str, study: str,
                   series: str, now: datetime) -> None:
    """Create the series and study documents unless they exist (``create`` is create-only),
    then check the markers (:func:`pacs.markers.refusal`): once the owner's erasure began
    or the study's deletion is in progress, what this call created is deleted again and
    :class:`pacs.markers.ErasureBegan` or :class:`pacs.markers.StudyDeleted` is raised."""
    from google.api_core.exceptions import AlreadyExists

    created = []
    for ref, doc in ((series_ref(firestore, study, series),
                      series_document(fields, uid, study, now)),
                     (study_ref(firestore, study), study_document(fields, uid, now))):
        try:
            ref.create(doc)
            created.append(ref)
        except AlreadyExists:
            pass
    outcome = markers.refusal(firestore, key, uid, study)
    if outcome is not None:
        for ref in created:
            ref.delete()
        markers.raise_refusal(outcome, uid, study)


class ParentDocuments:
    """Creates each series' and study's documents once per ingest run (not once per
    instance: a 500-slice series would otherwise try 1,000 creates). Thread-safe. Raises
    :class:`pacs.markers.ErasureBegan` or :class:`pacs.markers.StudyDeleted` (see
    :func:`create_parents`)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._done: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def ensure(self, firestore: Any, fields: dict[str, Any], uid: str, study: str, series: str,
               now: datetime) -> None:
        with self._lock:
            if (study, series) in self._done:
                return
            create_parents(firestore, self._key, fields, uid, study, series, now)
            self._done.add((study, series))


def _read_fields(clients: Clients, blob: Any) -> tuple[dict[str, Any], bool] | str:
    """Parse the header from the object itself (no seal): (fields, is_image) or the error
    code."""
    from pacs.dicom import header as dicom_header  # pydicom loads only where headers are read

    settings = clients.settings
    with blob.open("rb", chunk_size=1024**2) as reader:
        try:
            header = dicom_header.read_header(reader, blob.size,
                                              max_header_bytes=settings.header_max_bytes,
                                              inflate_max_bytes=settings.inflate_max_bytes)
        except dicom_header.HeaderRejected as err:
            return err.code
    return header.fields, header.is_image


def index_instance(clients: Clients, event: StorageObjectEvent,
                   now: Callable[[], datetime] = lambda: datetime.now(UTC),
                   use_seal: bool = True) -> str:
    """Index one canonical instance object (idempotent).

    Objects stored by ingest carry their header sealed in metadata, and ingest created
    their series and study documents before storing them: then this is one metadata read
    and one document write. Without a seal that opens, the object is read and parsed and
    the parent documents are created here; ``use_seal=False`` forces that path (the
    reconcile job, which cannot assume the parents exist). Objects tagged by ingest
    (:func:`indexed_by_ingest`, read from the event) cost nothing: ingest writes their
    documents itself, checked against the markers in the transaction of their results,
    and indexes them again on redelivery after a crash; the reconcile job, which passes
    ``use_seal=False``, indexes any whose document is still missing.
    """
    from google.api_core.exceptions import NotFound, PreconditionFailed

    settings = clients.settings
    if event.bucket != settings.instances_bucket:
        return "ignored"
    parsed = parse_instance_object(event.name)
    if parsed is None:
        return "ignored"
    uid, study, instance = parsed
    if use_seal and indexed_by_ingest(settings.hash_key, event.name, dict(event.metadata)):
        log_events.instance_indexed(uid, instance[:16], "by_ingest")
        return "by_ingest"
    bucket = clients.storage.bucket(settings.instances_bucket)

    def remove(outcome: str) -> str:
        # Written after its owner's erasure or its study's deletion began: the object goes.
        try:
            bucket.blob(event.name).delete(if_generation_match=int(event.generation)
                                           if event.generation else None)
        except (NotFound, PreconditionFailed):
            pass
        log_events.instance_indexed(uid, instance[:16], outcome)
        return outcome

    if markers.erasure_pending(clients.firestore, settings.hash_key, uid):
        return remove("erased")  # cheap early exit; the transaction below decides
    blob = bucket.get_blob(event.name)
    if blob is None or str(blob.generation) != str(event.generation):
        return "gone"  # deleted or replaced since: the newer event indexes it
    meta = blob.metadata or {}
    sealed = (seal.open_seal(settings.hash_key, event.name, meta.get(seal.METADATA_KEY))
              if use_seal else None)
    if sealed is not None:
        fields, is_image = sealed["fields"], bool(sealed.get("is_image"))
    else:
        read = _read_fields(clients, blob)
        if isinstance(read, str):
            log_events.instance_indexed(uid, instance[:16], f"unreadable:{read}")
            return "unreadable"
        fields, is_image = read
    if ids.instance_key(settings.hash_key, uid, fields["SOPInstanceUID"]) != instance:
        log_events.instance_indexed(uid, instance[:16], "name_mismatch")
        return "mismatch"
    series = ids.series_key(settings.hash_key, uid, fields["SeriesInstanceUID"])
    current = now()
    fs = clients.firestore
    if sealed is not None:
        # Ingest creates the study document before it stores a sealed object: without it,
        # the study was deleted (or its owner erased) after the object was written.
        if not study_ref(fs, study).get(field_paths=["owner"]).exists:
            return remove(markers.refusal(fs, settings.hash_key, uid, study) or "study_deleted")
    else:
        try:
            create_parents(fs, settings.hash_key, fields, uid, study, series, current)
        except markers.ErasureBegan:
            return remove("erased")
        except markers.StudyDeleted:
            return remove("study_deleted")
    # The instance last: settle counts instance documents, so once it sees them the series
    # and study documents exist. Written, then checked (pacs.markers): refused, it goes.
    ref = instance_ref(fs, study, series, instance)
    ref.set(instance_document(fields, uid, study, series, blob, is_image, current))
    outcome = markers.refusal(fs, settings.hash_key, uid, study, written_at=blob.time_created)
    if outcome is not None:
        ref.delete()
        return remove(outcome)
    log_events.instance_indexed(uid, instance[:16], "indexed")
    return "indexed"
