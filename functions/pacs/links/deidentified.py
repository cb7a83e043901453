"""The de-identified copy behind a share created with ``deidentified: true`` (issue 16).

At creation every instance of the study is read from the instances bucket, de-identified by
:mod:`pacs.dicom.deidentify` under a fresh 32-byte secret (used for this copy only, never
stored: UIDs and dates stay consistent within the copy, and nothing links it to another
share) and written create-only to the derived bucket as
``shares/{uid}/{share_id}/{n:06d}.dcm``; one document per copied instance,
``shares/{share_id}/share_copies/{n:06d}``, holds what a manifest lists (remapped UIDs, the
instance fields that identify no one, object, generation, size). Instances left out (burned-in
annotation, ultrasound, secondary capture, unreadable) are counted by reason for the owner.

The copy goes when the share is revoked (:func:`delete_copy`), expires (``expire_links``),
or its study is deleted or its owner erased (registry locations ``share_copy_objects`` and
``share_copies``). Writes respect the erasure marker and the study's deletion record: the
check after each object undoes the whole copy.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pacs import ids, markers
from pacs.errors import Forbidden, NotFound, QuotaExceeded
from pacs.indexing import catalog
from pacs.locations import delete_objects

COPIES = "share_copies"
PREFIX = "shares/{uid}/{share_id}/"
# One request makes the copy (no Pub/Sub continuation yet): within Hosting's 60 s and the
# function's 512 MiB (one instance in memory at a time, three times over while copied).
MAX_INSTANCES = 300
MAX_BYTES = 256 << 20
MAX_INSTANCE_BYTES = 64 << 20  # larger instances are left out as ``too_large``
COPY_FIELDS = ("InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient",
               "SliceLocation", "Rows", "Columns", "NumberOfFrames", "SOPClassUID")


def prefix(uid: str, share_id: str) -> str:
    """The object prefix of one share's copy."""
    return PREFIX.format(uid=uid, share_id=share_id)


def _instances(fs: Any, uid: str, study_key: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(series_key, instance_key, doc)`` of the owner's study, bounded."""
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
            if len(out) > MAX_INSTANCES or total > MAX_BYTES:
                raise QuotaExceeded(
                    f"a de-identified share holds at most {MAX_INSTANCES} instances and "
                    f"{MAX_BYTES >> 20} MiB: share the full study or fewer series",
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


def preview(clients: Any, uid: str, study_key: str) -> dict[str, Any]:
    """What a de-identified copy of the study would leave out, without making it: each
    instance's header is read (its first bytes, in parallel) and judged as :meth:`make_copy`
    judges it (:func:`pacs.dicom.deidentify.left_out_reason`; ``unreadable`` for a header
    that cannot be read, ``too_large`` past :data:`MAX_INSTANCE_BYTES`).

    Returns
    -------
    dict
        ``instances``, ``copied`` (how many the copy would hold), ``left_out`` (reason ->
        count) and ``fits`` (false: over the copy's bounds, :data:`MAX_INSTANCES` and
        :data:`MAX_BYTES`, so a de-identified share would be refused).
    """
    from concurrent.futures import ThreadPoolExecutor

    from pacs.dicom import header as dicom_header
    from pacs.dicom.deidentify import left_out_reason
    from pacs.indexing.series_metadata import HEAD_BYTES, RangedObject

    try:
        instances = _instances(clients.firestore, uid, study_key)
    except QuotaExceeded:
        return {"instances": None, "copied": 0, "left_out": {}, "fits": False}
    settings = clients.settings
    source = clients.storage.bucket(settings.instances_bucket)

    def judge(doc: dict[str, Any]) -> str | None:
        from google.api_core.exceptions import NotFound as ObjectGone

        size = int(doc.get("size") or 0)
        if size > MAX_INSTANCE_BYTES:
            return "too_large"
        blob = source.blob(doc["object"], generation=int(doc["generation"]))
        try:
            head = blob.download_as_bytes(start=0, end=min(size, HEAD_BYTES) - 1,
                                          checksum=None) if size else b""
            _header, ds = dicom_header.read_header_dataset(
                RangedObject(blob, size, head), size, max_header_bytes=settings.header_max_bytes,
                inflate_max_bytes=settings.inflate_max_bytes)
        except ObjectGone:
            return "object_missing"
        except dicom_header.HeaderRejected:
            return "unreadable"
        return left_out_reason(ds)

    with ThreadPoolExecutor(8) as pool:
        reasons = list(pool.map(judge, [doc for _s, _i, doc in instances]))
    left_out = Counter(r for r in reasons if r)
    return {"instances": len(reasons), "copied": len(reasons) - sum(left_out.values()),
            "left_out": dict(left_out), "fits": True}


def make_copy(clients: Any, uid: str, study_key: str, share_id: str) -> dict[str, Any]:
    """Write the de-identified copy of ``study_key`` for ``share_id``.

    Returns
    -------
    dict
        ``copied`` (instances), ``bytes``, ``left_out`` (reason -> count), ``study_uid``
        (the copy's StudyInstanceUID). Raises 403 ``erasure_in_progress`` or 404 after
        removing what it wrote when the owner's erasure or the study's deletion began
        meanwhile.
    """
    from pacs.dicom.deidentify import Deidentifier
    from pacs.links import copy_metadata

    settings = clients.settings
    fs = clients.firestore
    source = clients.storage.bucket(settings.instances_bucket)
    target = clients.storage.bucket(settings.derived_bucket)
    deid = Deidentifier(secrets.token_bytes(32))
    left_out: Counter[str] = Counter()
    copied, size, study_uid = 0, 0, ""
    share_ref = fs.collection("shares").document(share_id)
    from google.api_core.exceptions import NotFound as ObjectGone
    from google.api_core.exceptions import PreconditionFailed

    index = copy_metadata.CopyIndex()
    instances = _instances(fs, uid, study_key)
    _check_quota(clients, uid, sum(int(doc.get("size") or 0) for _s, _i, doc in instances))
    try:
        # An erasure or deletion that already began refuses before anything is read (its
        # writers may be deleting the very objects this would copy).
        markers.raise_refusal(markers.refusal(fs, settings.hash_key, uid, study_key),
                              uid, study_key)
        for _series_key, instance_key, doc in instances:
            if int(doc.get("size") or 0) > MAX_INSTANCE_BYTES:
                left_out["too_large"] += 1
                continue
            try:
                data = source.blob(ids.instance_object(uid, study_key, instance_key)
                                   ).download_as_bytes(if_generation_match=int(doc["generation"]))
            except (ObjectGone, PreconditionFailed):
                # Deleted or replaced since it was indexed: an erasure or deletion that
                # began meanwhile refuses; otherwise the instance is left out, named.
                markers.raise_refusal(markers.refusal(fs, settings.hash_key, uid, study_key),
                                      uid, study_key)
                left_out["object_missing"] += 1
                continue
            result = deid.copy(data)
            if result.data is None:
                left_out[result.left_out or "unreadable"] += 1
                continue
            number = f"{copied:06d}"
            name = prefix(uid, share_id) + f"{number}.dcm"
            blob = target.blob(name)
            blob.upload_from_string(result.data, content_type="application/dicom",
                                    if_generation_match=0)
            markers.raise_refusal(markers.refusal(fs, settings.hash_key, uid, study_key),
                                  uid, study_key)
            series_id = ids.keyed_hash(settings.hash_key, "copy-series", share_id,
                                       result.series_uid)[:32]
            share_ref.collection(COPIES).document(number).set({
                "owner": uid, "object": name, "generation": str(blob.generation),
                "size": len(result.data), "StudyInstanceUID": result.study_uid,
                "SeriesInstanceUID": result.series_uid, "SOPInstanceUID": result.sop_uid,
                "series_id": series_id, **{k: doc[k] for k in COPY_FIELDS if k in doc},
                "TransferSyntaxUID": doc.get("TransferSyntaxUID")})
            index.add(series_id, number, str(blob.generation),
                      copy_metadata.entry(settings, result.data))
            copied += 1
            size += len(result.data)
            study_uid = result.study_uid
        # What DICOMweb serves of the copy (pacs.links.copy_metadata), checked like the rest.
        copy_index, written = index.write(target, prefix(uid, share_id), uid,
                                          datetime.now(UTC))
        share_ref.update({"copy_index": copy_index})
        size += written
        markers.raise_refusal(markers.refusal(fs, settings.hash_key, uid, study_key),
                              uid, study_key)
    except BaseException as err:
        delete_copy(clients, uid, share_id)
        if isinstance(err, markers.ErasureBegan):
            raise Forbidden("your account is being erased", code="erasure_in_progress") from None
        if isinstance(err, markers.StudyDeleted):
            raise NotFound("no such study", code="not_found") from None
        raise
    return {"copied": copied, "bytes": size, "left_out": dict(left_out),
            "study_uid": study_uid}


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


def copy_rows(fs: Any, share_id: str, uid: str) -> list[dict[str, Any]]:
    """Every copied instance of a share (for its manifest and series pages)."""
    rows = []
    for snap in fs.collection("shares").document(share_id).collection(COPIES).stream():
        doc = snap.to_dict() or {}
        if doc.get("owner") == uid:
            rows.append({"instance_id": snap.id, **doc})
    if not rows:
        raise NotFound("no such share", code="not_found")
    return rows


def _series_of(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    series: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["instance_id"]):
        series.setdefault(row["series_id"], []).append(row)
    return series


def copy_manifest(minter: Any, share_id: str, doc: dict[str, Any], issued: Any,
                  ttl: int, expires_at: str) -> dict[str, Any]:
    """The manifest of a de-identified share: the copy's UIDs, no patient or study text
    (all Annex E X/Z attributes), no previews (rendered from the original)."""
    rows = copy_rows(minter.clients.firestore, share_id, doc["owner"])
    series = _series_of(rows)
    entries = [{"series_id": key, "SeriesInstanceUID": items[0]["SeriesInstanceUID"],
                "instance_count": len(items), "preview": {"status": "none"}}
               for key, items in series.items()]
    return {"study_id": share_id, "deidentified": True,
            "study": {"StudyInstanceUID": rows[0]["StudyInstanceUID"],
                      "PatientIdentityRemoved": "YES", "series_count": len(series),
                      "instance_count": len(rows)},
            "left_out": (doc.get("copy") or {}).get("left_out", {}),
            "series": entries, "issued_at": _iso(issued), "expires_at": expires_at,
            "ttl_seconds": ttl, "series_page_size": minter.settings.series_page_size}


def copy_series_page(minter: Any, share_id: str, doc: dict[str, Any], series_id: Any,
                     page_token: Any, issued: Any, ttl: int, expires_at: str
                     ) -> dict[str, Any]:
    """One page of signed URLs of the copy's instances of one series."""
    from pacs.links import signing

    series = _series_of(copy_rows(minter.clients.firestore, share_id, doc["owner"]))
    if not isinstance(series_id, str) or series_id not in series:
        raise NotFound("no such series", code="not_found")
    items = [r for r in series[series_id]
             if not isinstance(page_token, str) or r["instance_id"] > page_token]
    size = minter.settings.series_page_size
    page = items[:size]
    refs = [signing.ObjectRef(minter.settings.derived_bucket, r["object"], r["generation"])
            for r in page]
    urls = minter.sign(refs, ttl)
    keep = ("SOPInstanceUID", *COPY_FIELDS, "TransferSyntaxUID", "size")
    return {"study_id": share_id, "series_id": series_id,
            "instances": [{"instance_id": r["instance_id"], **{k: r[k] for k in keep if k in r},
                           "url": url} for r, url in zip(page, urls, strict=True)],
            "issued_at": _iso(issued), "expires_at": expires_at, "ttl_seconds": ttl,
            "next_page_token": page[-1]["instance_id"] if len(items) > size else None}


def _iso(value: Any) -> str:
    from pacs.links import signing

    return signing.iso(value)
