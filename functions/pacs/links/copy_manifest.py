"""What a de-identified share's recipient is given of its copy (:mod:`pacs.links.deidentified`):
the manifest (the copy's series under their own UIDs and previews, no patient or study text)
and pages of signed URLs of the copy's objects, for :mod:`pacs.links.shares`."""

from __future__ import annotations

from typing import Any

from pacs.errors import NotFound
from pacs.links.deidentified import COPIES, COPY_FIELDS


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
    (all Annex E X/Z attributes), each series' preview rendered from the copy
    (:mod:`pacs.links.copy_previews`) with a signed URL."""
    from pacs.links import signing

    rows = copy_rows(minter.clients.firestore, share_id, doc["owner"])
    series = _series_of(rows)
    previews = (doc.get("copy") or {}).get("previews") or {}
    with_preview = [key for key in series if key in previews]
    urls = dict(zip(with_preview, minter.sign(
        [signing.ObjectRef(minter.settings.derived_bucket, previews[key]["object"],
                           previews[key]["generation"]) for key in with_preview], ttl),
        strict=True)) if with_preview else {}
    entries = [{"series_id": key, "SeriesInstanceUID": items[0]["SeriesInstanceUID"],
                "instance_count": len(items),
                "preview": ({"status": "ready", "url": urls[key], "expires_at": expires_at}
                            if key in urls else {"status": "none"})}
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
