"""What a de-identified copy of a study would leave out, said to the owner before a
de-identified share is made (``POST /shares/preview``), without making a copy (issue 16)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pacs.errors import QuotaExceeded
from pacs.links import manifests
from pacs.links.deidentified import (
    MAX_COPY_BYTES,
    MAX_INSTANCE_BYTES,
    MAX_INSTANCES,
    study_instances,
)


def preview_share(minter: manifests.Minter, uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /shares/preview {study_id}``: what a de-identified share of the owner's study
    would leave out (:func:`preview`); 404 for a study that is not theirs, 403 while
    processing is restricted."""
    fs = minter.clients.firestore
    key, _ = manifests.owned_study(fs, uid, body.get("study_id"))
    manifests.check_not_restricted(fs, uid, key)
    return {"study_id": key, **preview(minter.clients, uid, key)}


def preview(clients: Any, uid: str, study_key: str) -> dict[str, Any]:
    """What a de-identified copy of the study would leave out, without making it: each
    instance's header is read (its first bytes, in parallel) and judged as
    :func:`pacs.links.deidentified.make_copy` judges it (:func:`pacs.dicom.deidentify.left_out_reason`; ``unreadable`` for a header
    that cannot be read, ``too_large`` past
    :data:`~pacs.links.deidentified.MAX_INSTANCE_BYTES`).

    Returns
    -------
    dict
        ``instances``, ``copied`` (how many the copy would hold), ``left_out`` (reason ->
        count) and ``fits`` (false: over the copy's bounds, :data:`~pacs.links.deidentified.MAX_INSTANCES` and
        :data:`~pacs.links.deidentified.MAX_COPY_BYTES`, so a de-identified share would be refused;
        then also those bounds, ``max_instances`` and ``max_gib``, for the owner to read).
    """
    from concurrent.futures import ThreadPoolExecutor

    from pacs.dicom import header as dicom_header
    from pacs.dicom.deidentify import left_out_reason
    from pacs.indexing.series_metadata import HEAD_BYTES, RangedObject

    try:
        instances = study_instances(clients.firestore, uid, study_key)
    except QuotaExceeded:
        return {"instances": None, "copied": 0, "left_out": {}, "fits": False,
                "max_instances": MAX_INSTANCES, "max_gib": MAX_COPY_BYTES >> 30}
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
