"""The de-identified copy behind a share created with ``deidentified: true`` (issue 16).

Every instance of the study is read from the instances bucket, de-identified by
:mod:`pacs.dicom.deidentify` under a fresh 32-byte secret (used for this copy only: UIDs and
dates stay consistent within the copy, and nothing links it to another share) and written
create-only to the derived bucket as ``shares/{uid}/{share_id}/{n:06d}.dcm``; one document
per copied instance, ``shares/{share_id}/share_copies/{n:06d}``, holds what a manifest lists
(remapped UIDs, the instance fields that identify no one, object, generation, size) and what
DICOMweb serves of it (:mod:`pacs.links.copy_metadata`). Instances left out (burned-in
annotation, ultrasound, secondary capture, unreadable) are counted by reason for the owner.

A run copies at most ``share_copy_run_instances`` instances and :data:`MAX_BYTES`: the
request that creates the share makes the first run (all of a small study); a larger copy is
``preparing`` and carried on run by run through ``privacy-jobs`` messages
(:func:`queue_run`, :func:`continue_copy`), where to go on kept in the share's ``copy`` state
and the secret in its :data:`SECRET_FIELD` until the copy is ``ready`` (then it is deleted). The whole
study's size is reserved in the owner's quota meanwhile.

The copy goes when the share is revoked (:func:`delete_copy`), expires (``expire_links``),
or its study is deleted or its owner erased (registry locations ``share_copy_objects`` and
``share_copies``). Writes respect the erasure marker and the study's deletion record: the
check after each object undoes the whole copy.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs import ids, markers
from pacs.errors import Forbidden, NotFound, QuotaExceeded
from pacs.indexing import catalog
from pacs.locations import delete_objects

COPIES = "share_copies"
#: The share document's field holding the copy's secret while it is ``preparing`` (left out
#: of the owner's export as security material; deleted once the copy is ready).
SECRET_FIELD = "copy_secret"
PREFIX = "shares/{uid}/{share_id}/"
# A run copies what fits in Hosting's 60 s and the function's 512 MiB (one instance in
# memory at a time, three times over while copied); larger copies take several runs.
MAX_INSTANCES = 5000  # in all, over as many runs as it takes
MAX_BYTES = 256 << 20  # per run (and ``share_copy_run_instances`` instances)
MAX_COPY_BYTES = 8 << 30
MAX_INSTANCE_BYTES = 64 << 20  # larger instances are left out as ``too_large``
COPY_FIELDS = ("InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient",
               "SliceLocation", "Rows", "Columns", "NumberOfFrames", "SOPClassUID")


def prefix(uid: str, share_id: str) -> str:
    """The object prefix of one share's copy."""
    return PREFIX.format(uid=uid, share_id=share_id)


def study_instances(fs: Any, uid: str, study_key: str
                    ) -> list[tuple[str, str, dict[str, Any]]]:
    """``(series_key, instance_key, doc)`` of the owner's study in a stable order (series,
    then instance, by document id), bounded by :data:`MAX_INSTANCES` and
    :data:`MAX_COPY_BYTES` (429 ``too_large_to_deidentify``)."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    total = 0
    for series in catalog.study_ref(fs, study_key).collection("series").stream():
        if (series.to_dict() or {}).get("owner") != uid:
            continue
        for snap in series.reference.collection("instances").stream():
            doc = snap.to_dict() or {}
            if doc.get("owner") != uid or doc.get("object") != ids.instance_object(
                    uid, study_key, snap.id) or not doc.get("generation"):
                continue
            out.append((series.id, snap.id, doc))
            total += int(doc.get("size") or 0)
            if len(out) > MAX_INSTANCES or total > MAX_COPY_BYTES:
                raise QuotaExceeded(
                    f"a de-identified share holds at most {MAX_INSTANCES} instances and "
                    f"{MAX_COPY_BYTES >> 30} GiB: share the full study or fewer series",
                    code="too_large_to_deidentify")
    return out


def copy_bytes_query(firestore: Any, uid: str) -> Any:
    """The owner's shares, whose ``copy_bytes`` (the live copy's size, 0 once revoked) count
    toward the quota (summed here and by ``pacs.ingest.uploads.usage``)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return firestore.collection("shares").where(filter=FieldFilter("owner", "==", uid))


def copy_bytes(firestore: Any, uid: str) -> int:
    """Bytes of the owner's live de-identified copies."""
    result = copy_bytes_query(firestore, uid).sum("copy_bytes", alias="bytes").get()
    return sum(int(item.value or 0) for item in result[0] if item.alias == "bytes")


def _check_quota(clients: Any, uid: str, adding: int) -> None:
    """429 ``quota_exceeded`` when the copy would not fit: uploads holding quota (as
    ``pacs.ingest.uploads`` counts them) plus live copies plus this one."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    held = (clients.firestore.collection("uploads")
            .where(filter=FieldFilter("owner", "==", uid))
            .where(filter=FieldFilter("counts_toward_quota", "==", True))
            .sum("size", alias="bytes").get())
    uploads = sum(int(item.value or 0) for item in held[0] if item.alias == "bytes")
    if uploads + copy_bytes(clients.firestore, uid) + adding > clients.settings.user_quota_bytes:
        raise QuotaExceeded("storage quota reached: a de-identified copy counts toward it; "
                            "delete studies or revoke shares", code="quota_exceeded")


def make_copy(clients: Any, uid: str, study_key: str, share_id: str) -> dict[str, Any]:
    """Start the de-identified copy of ``study_key`` for ``share_id``: check the quota for
    the whole study, then copy the first run's instances (all of them for a study within
    one run's bounds) in this request.

    Returns
    -------
    dict
        ``copied`` (instances), ``bytes``, ``left_out`` (reason -> count), ``done`` and
        ``copy``: the share's ``copy`` state to store (``ready``, or ``preparing`` with
        where the next run starts; :func:`continue_copy` runs it, queued by
        :func:`queue_run`). Raises 403 ``erasure_in_progress`` or 404 after removing what
        it wrote when the owner's erasure or the study's deletion began meanwhile.
    """
    instances = study_instances(clients.firestore, uid, study_key)
    reserved = sum(int(doc.get("size") or 0) for _s, _i, doc in instances)
    _check_quota(clients, uid, reserved)
    secret = secrets.token_hex(32)
    state = {"status": "preparing", "next": 0, "copied": 0, "bytes": 0, "left_out": {},
             "runs": 0, "reserved": reserved}
    try:
        # An erasure or deletion that already began refuses before anything is read (its
        # writers may be deleting the very objects this would copy).
        _check_markers(clients, uid, study_key)
        state = _run(clients, uid, study_key, share_id, state, secret, instances)
        if "index" in state:
            clients.firestore.collection("shares").document(share_id).update(
                {"copy_index": state.pop("index")})
    except (markers.ErasureBegan, markers.StudyDeleted) as err:
        delete_copy(clients, uid, share_id)
        raise _refusal(err) from None
    except BaseException:
        delete_copy(clients, uid, share_id)
        raise
    return {"copied": state["copied"], "bytes": state["bytes"],
            "left_out": state["left_out"], "done": state["status"] == "ready",
            "copy": state, "secret": secret}


def _check_markers(clients: Any, uid: str, study_key: str) -> None:
    markers.raise_refusal(markers.refusal(clients.firestore, clients.settings.hash_key, uid,
                                          study_key), uid, study_key)


def _refusal(err: BaseException) -> Exception:
    if isinstance(err, markers.ErasureBegan):
        return Forbidden("your account is being erased", code="erasure_in_progress")
    return NotFound("no such study", code="not_found")


def _run(clients: Any, uid: str, study_key: str, share_id: str, state: dict[str, Any],
         secret: str, instances: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Copy the instances from ``state["next"]`` on, at most ``share_copy_run_instances``
    and :data:`MAX_BYTES` in this run; return the new state (``ready`` once every instance
    is done, with the copy's DICOMweb metadata written). Objects are written create-only by
    number: a run delivered again (or retried after dying part-way) keeps what an earlier
    delivery wrote under a number and points its document at that."""
    from google.api_core.exceptions import NotFound as ObjectGone
    from google.api_core.exceptions import PreconditionFailed

    from pacs.dicom.deidentify import Deidentifier
    from pacs.links import copy_metadata, copy_previews

    settings = clients.settings
    source = clients.storage.bucket(settings.instances_bucket)
    target = clients.storage.bucket(settings.derived_bucket)
    copies = clients.firestore.collection("shares").document(share_id).collection(COPIES)
    deid = Deidentifier(bytes.fromhex(secret))
    left_out = Counter(state.get("left_out") or {})
    copied, size, start = int(state["copied"]), int(state["bytes"]), int(state["next"])
    batch, batch_bytes = [], 0
    for item in instances[start:]:
        item_bytes = int(item[2].get("size") or 0)
        if len(batch) >= max(1, settings.share_copy_run_instances) or (
                batch and batch_bytes + item_bytes > MAX_BYTES):
            break
        batch.append(item)
        batch_bytes += item_bytes
    for _series_key, instance_key, doc in batch:
        if int(doc.get("size") or 0) > MAX_INSTANCE_BYTES:
            left_out["too_large"] += 1
            continue
        try:
            data = source.blob(ids.instance_object(uid, study_key, instance_key)
                               ).download_as_bytes(if_generation_match=int(doc["generation"]))
        except (ObjectGone, PreconditionFailed):
            # Deleted or replaced since it was indexed: an erasure or deletion that began
            # meanwhile refuses; otherwise the instance is left out, named.
            _check_markers(clients, uid, study_key)
            left_out["object_missing"] += 1
            continue
        result = deid.copy(data)
        if result.data is None:
            left_out[result.left_out or "unreadable"] += 1
            continue
        number = f"{copied:06d}"
        name = prefix(uid, share_id) + f"{number}.dcm"
        blob = target.blob(name)
        stored = result.data
        try:
            blob.upload_from_string(stored, content_type="application/dicom",
                                    if_generation_match=0)
        except PreconditionFailed:  # an earlier delivery of this run wrote it: it stands
            blob.reload()
            stored = blob.download_as_bytes(if_generation_match=blob.generation)
        _check_markers(clients, uid, study_key)
        entry = copy_metadata.entry(settings, stored)
        copies.document(number).set({
            "owner": uid, "object": name, "generation": str(blob.generation),
            "size": len(stored), "StudyInstanceUID": result.study_uid,
            "SeriesInstanceUID": result.series_uid, "SOPInstanceUID": result.sop_uid,
            "series_id": ids.keyed_hash(settings.hash_key, "copy-series", share_id,
                                        result.series_uid)[:32],
            **{k: doc[k] for k in COPY_FIELDS if k in doc},
            "TransferSyntaxUID": doc.get("TransferSyntaxUID"), "entry": entry.stored()})
        copied += 1
        size += len(stored)
    state = {**state, "next": start + len(batch), "copied": copied, "bytes": size,
             "left_out": dict(left_out), "runs": int(state.get("runs") or 0) + 1,
             "updated_at": datetime.now(UTC)}
    if state["next"] < len(instances):
        return state
    # The last run: what DICOMweb serves of the copy (pacs.links.copy_metadata).
    snaps = list(copies.stream())
    copy_index, written = copy_metadata.CopyIndex.from_documents(snaps).write(
        target, prefix(uid, share_id), uid, datetime.now(UTC))
    previews, preview_bytes = copy_previews.write_previews(
        clients, prefix(uid, share_id), [snap.to_dict() or {} for snap in snaps])
    _check_markers(clients, uid, study_key)
    ready = {k: v for k, v in state.items() if k not in ("next", "reserved")}
    # ``index``: the share's ``copy_index``, which the caller stores with the state.
    return {**ready, "status": "ready", "bytes": size + written + preview_bytes,
            "index": copy_index, "previews": previews}


def queue_run(clients: Any, uid: str, share_id: str) -> None:
    """Queue the next run of a copy that is ``preparing`` on ``privacy-jobs`` (type
    ``share_copy``: :func:`pacs.privacy.jobs.run_job` calls :func:`continue_copy`)."""
    import json

    topic = clients.publisher.topic_path(clients.settings.project_id,
                                         clients.settings.privacy_topic)
    payload = {"request_id": share_id, "uid": uid, "type": "share_copy"}
    clients.publisher.publish(topic, json.dumps(payload).encode()).result(timeout=60)


def resume_stalled_copies(clients: Any, now: datetime, older_than: timedelta) -> int:
    """Queue the next run again of every copy left ``preparing`` for longer than
    ``older_than`` (a lost message, or a run that died past its retries; a run still under
    way meanwhile makes the second one a duplicate, which saves nothing). For the
    scheduled ``resume_erasures`` job (:func:`pacs.privacy.jobs.resume_stalled`). Returns
    how many were queued."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = clients.firestore.collection("shares").where(
        filter=FieldFilter("copy.status", "==", "preparing"))
    queued = 0
    for snap in query.stream():
        doc = snap.to_dict() or {}
        updated = (doc.get("copy") or {}).get("updated_at")
        if doc.get("owner") and isinstance(updated, datetime) and updated <= now - older_than:
            queue_run(clients, doc["owner"], snap.id)
            queued += 1
    return queued


def continue_copy(clients: Any, uid: str, share_id: str) -> str:
    """One further run of a share's copy (a ``share_copy`` message): copy the next
    instances, save where it stopped (only if no other run or revocation changed the share
    meanwhile) and queue the next run, or mark the copy ``ready``. A share revoked, expired
    or deleted meanwhile gets its copy deleted; an erasure or study deletion that began
    marks it ``failed``. Returns what happened (``ran``, ``ready``, ``gone``, ...)."""
    from google.api_core.exceptions import FailedPrecondition
    from google.api_core.exceptions import NotFound as DocumentGone
    from google.cloud.firestore import DELETE_FIELD

    fs = clients.firestore
    ref = fs.collection("shares").document(share_id)
    snap = ref.get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid or doc.get("revoked"):
        delete_copy(clients, uid, share_id)
        return "gone"
    state = doc.get("copy") or {}
    if state.get("status") != "preparing":
        return "not_preparing"
    secret = doc.get(SECRET_FIELD)
    try:
        _check_markers(clients, uid, doc["study_key"])
        if not isinstance(secret, str):
            raise QuotaExceeded("the copy's secret is gone", code="copy_failed")
        state = _run(clients, uid, doc["study_key"], share_id, state, secret,
                     study_instances(fs, uid, doc["study_key"]))
    except (markers.ErasureBegan, markers.StudyDeleted, QuotaExceeded):
        delete_copy(clients, uid, share_id)
        ref.update({"copy": {"status": "failed", "left_out": state.get("left_out") or {}},
                    "copy_bytes": 0, SECRET_FIELD: DELETE_FIELD})
        return "failed"
    update: dict[str, Any] = {}
    if state["status"] == "ready":
        update.update(copy_bytes=state["bytes"], copy_index=state.pop("index"))
        update[SECRET_FIELD] = DELETE_FIELD
    update["copy"] = state
    try:
        ref.update(update, option=fs.write_option(last_update_time=snap.update_time))
    except (FailedPrecondition, DocumentGone):
        again = ref.get()
        if not again.exists or (again.to_dict() or {}).get("revoked"):
            delete_copy(clients, uid, share_id)
            return "gone"
        return "superseded"  # another delivery of this run saved first
    if state["status"] != "ready":
        queue_run(clients, uid, share_id)
        return "ran"
    return "ready"


def delete_copy(clients: Any, uid: str, share_id: str) -> int:
    """Delete a share's copy (objects, then their documents); idempotent. Returns how many
    objects went."""
    bucket = clients.storage.bucket(clients.settings.derived_bucket)
    names = [b.name for b in clients.storage.list_blobs(
        clients.settings.derived_bucket, prefix=prefix(uid, share_id))]
    deleted = delete_objects(bucket, names) if names else 0
    coll = clients.firestore.collection("shares").document(share_id).collection(COPIES)
    while True:
        snaps = list(coll.limit(400).stream())
        if not snaps:
            return deleted
        batch = clients.firestore.batch()
        for snap in snaps:
            batch.delete(snap.reference)
        batch.commit()
