"""Settling a series after an upload: recompute counts from the instance documents, update
the study, build the series preview from the middle slice and the series' WADO-RS metadata
and frame index (:mod:`pacs.indexing.series_metadata`).

It runs once per (upload, series) through a Pub/Sub message sent when the upload finishes.
The instance documents are written asynchronously by ``on_instance_finalized``, so settle
first checks that every instance this upload stored in the series is indexed, and raises
:class:`~pacs.errors.TransientError` (the message is redelivered) until then.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pacs import ids, log_events, markers, results
from pacs.clients import Clients
from pacs.dicom import header as dicom_header
from pacs.errors import TransientError
from pacs.indexing import catalog, search_keys, series_metadata
from pacs.locations import delete_objects

SETTLE_TOPIC = "series-settle"


def request_settle_for_upload(clients: Clients, uid: str, upload_id: str) -> int:
    """Publish one settle message per series the upload stored instances in."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    files = clients.firestore.collection("uploads").document(upload_id).collection("files")
    expected: dict[tuple[str, str], int] = {}
    query = files.where(filter=FieldFilter("status", "==", results.STORED)).select(
        ["study_key", "series_key"])
    for snap in query.stream():
        doc = snap.to_dict()
        key = (doc["study_key"], doc["series_key"])
        expected[key] = expected.get(key, 0) + 1
    topic = clients.publisher.topic_path(clients.settings.project_id, SETTLE_TOPIC)
    futures = [clients.publisher.publish(topic, json.dumps({
        "uid": uid, "upload_id": upload_id, "study_key": study, "series_key": series,
        "expected": count}).encode()) for (study, series), count in expected.items()]
    for future in futures:
        future.result(timeout=60)
    return len(futures)


def _count(query: Any) -> int:
    return int(query.count(alias="n").get()[0][0].value)


def settle_series(clients: Clients, payload: dict[str, Any],
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    """Recompute a series' and its study's counts, then (re)build the series preview."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    fs = clients.firestore
    uid, study, series = payload["uid"], payload["study_key"], payload["series_key"]
    if markers.erasure_pending(fs, clients.settings.hash_key, uid):
        return "erased"  # the user is being (or was) erased: no counts, no preview
    series_ref = catalog.series_ref(fs, study, series)
    instances = series_ref.collection("instances")
    arrived = _count(instances.where(filter=FieldFilter("upload_id", "==", payload["upload_id"])))
    if arrived < int(payload.get("expected", 0)):
        raise TransientError(f"{arrived} of {payload['expected']} instances indexed so far")
    series_snap = series_ref.get()
    if not series_snap.exists:
        return "gone"
    computed_at = now()
    docs = []
    for snap in instances.select(["ImagePositionPatient", "ImageOrientationPatient",
                                  "SliceLocation", "InstanceNumber", "is_image", "object", "size",
                                  "generation", "SOPInstanceUID"]).stream():
        docs.append({**snap.to_dict(), "key": snap.id})
    series_update = {"instance_count": len(docs), "total_bytes": sum(d.get("size", 0) for d in docs),
                     "counts_at": computed_at}
    _guarded_update(fs, series_ref, series_update, computed_at)
    preview_status = _build_preview(clients, uid, study, series, series_snap.to_dict(), docs, now)
    # The WADO-RS metadata and frame index, after the preview (both read the instances).
    series_metadata.rebuild(clients, uid, study, series, docs, computed_at)
    # Once per series, after its counts and preview: the study document takes one write here.
    _settle_study(fs, study, now())
    log_events.series_settled(uid, series[:16], len(docs), preview_status)
    return "settled"


def _guarded_update(fs: Any, ref: Any, update: dict[str, Any], computed_at: datetime,
                    attempts: int = 20) -> None:
    """Write counts unless a computation that started later already wrote (a slower,
    older computation must not overwrite a newer one).

    A compare-and-set on the document's update time rather than a transaction: series of
    one study settle concurrently, and transactions on the study document serialize (and,
    on the emulator, abort) where a precondition failure just re-reads and tries again.
    """
    from google.api_core.exceptions import FailedPrecondition

    for attempt in range(attempts):
        snap = ref.get()
        if not snap.exists:
            return
        previous = (snap.to_dict() or {}).get("counts_at")
        if previous is not None and previous > computed_at:
            return
        try:
            ref.update(update, option=fs.write_option(last_update_time=snap.update_time))
            return
        except FailedPrecondition:
            time.sleep(min(0.5, 0.01 * 2**attempt))
    raise TransientError("counts kept changing underneath; retry later")


def _settle_study(fs: Any, study: str, computed_at: datetime) -> None:
    study_ref = catalog.study_ref(fs, study)
    series = [s.to_dict() for s in study_ref.collection("series").select(
        ["Modality", "instance_count", "total_bytes", "preview", "SeriesNumber"]).stream()]
    modalities = sorted({s["Modality"] for s in series if s.get("Modality")})
    with_preview = sorted((s for s in series if (s.get("preview") or {}).get("status") == "ready"),
                          key=lambda s: (s.get("SeriesNumber") is None, s.get("SeriesNumber") or 0))
    # The search terms pair modalities with name prefixes and description words, so they
    # are recomputed with the modalities (the name and description never change).
    current = study_ref.get(field_paths=["search"])
    if not current.exists:
        return
    search = search_keys.with_modalities((current.to_dict() or {}).get("search") or {},
                                         modalities)
    update = {
        "series_count": len(series),
        "instance_count": sum(s.get("instance_count", 0) for s in series),
        "total_bytes": sum(s.get("total_bytes", 0) for s in series),
        "modalities": modalities, "ModalitiesInStudy": modalities,
        "search.modalities": search["modalities"], "search.terms": search["terms"],
        "preview": with_preview[0]["preview"] if with_preview else None,
        "counts_at": computed_at, "updated_at": computed_at,
    }
    _guarded_update(fs, study_ref, update, computed_at)


def _build_preview(clients: Clients, uid: str, study: str, series: str,
                   series_doc: dict[str, Any], docs: list[dict[str, Any]],
                   now: Callable[[], datetime]) -> str:
    from pacs.indexing import preview  # pixel codecs load only where previews are built

    images = [d for d in docs if d.get("is_image")]
    if not images:
        return _set_preview(clients, uid, study, series, {"status": "none"}) or "none"
    middle = preview.middle_instance(images)
    current = series_doc.get("preview") or {}
    if current.get("status") == "ready" and current.get("instance_key") == middle["key"]:
        return "unchanged"
    settings = clients.settings
    blob = clients.storage.bucket(settings.instances_bucket).get_blob(middle["object"])
    if blob is None:
        raise TransientError("middle instance object not found yet")
    try:
        # Read through a seekable reader: only the header and one frame are fetched.
        with blob.open("rb", chunk_size=1024**2) as reader:
            header = dicom_header.read_header(reader, blob.size,
                                              max_header_bytes=settings.header_max_bytes,
                                              inflate_max_bytes=settings.inflate_max_bytes)
            reader.seek(0)
            image = preview.render_preview(reader, header, size=256)
    except (preview.PreviewFailed, dicom_header.HeaderRejected) as err:
        return _set_preview(clients, uid, study, series, {
            "status": "failed", "reason": err.code, "instance_key": middle["key"]}) or "failed"
    media_type = preview.preview_media_type(image)
    name = ids.preview_object(uid, study, series, ids.PREVIEW_EXTENSIONS[media_type])
    out = clients.storage.bucket(settings.derived_bucket).blob(name)
    out.upload_from_string(image, content_type=media_type)
    refused = _set_preview(clients, uid, study, series, {
        "status": "ready", "object": name, "media_type": media_type,
        "generation": str(out.generation), "instance_key": middle["key"], "built_at": now()})
    if refused:
        # The object was written first and checked after: an erasure or deletion that began
        # before the check would not see it, so it goes now.
        delete_objects(clients.storage.bucket(settings.derived_bucket), [name])
        return refused
    return "ready"


def _set_preview(clients: Clients, uid: str, study: str, series: str,
                 preview_state: dict[str, Any]) -> str | None:
    """Record the series' preview, unless the series is gone or its owner's erasure or its
    study's deletion began: then the refusal (``gone``, ``erased``, ``study_deleted``).
    An update (never a create), then the markers checked (:func:`pacs.markers.refusal`)."""
    from google.api_core.exceptions import NotFound

    fs = clients.firestore
    try:
        catalog.series_ref(fs, study, series).update({"preview": preview_state})
    except NotFound:
        return "gone"
    return markers.refusal(fs, clients.settings.hash_key, uid, study)
