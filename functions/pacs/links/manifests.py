"""Viewer manifests: a study's metadata with short-lived signed URLs, minted for its owner
(here) or for the holder of a share (``pacs.links.shares``).

A manifest lists the study and its series, each series' preview with a signed URL. Instance
URLs come per series, a page at a time (:func:`series_page`): without a key file every URL
costs one IAM ``signBlob`` round trip, so a 3,000-slice CT is signed when the viewer opens
that series, in parallel, page by page, and never all at once.

Every URL is built from the canonical object name derived from the ids
(``ids.instance_object``/``ids.preview_object``), checked against the document, and pins the
generation the document recorded: a document can never point a URL at another user's object.

Not yours and does not exist are the same 404 (:func:`study_not_found`), so study ids cannot
be probed. A restricted account or study (:func:`is_restricted`) gets no manifests and no
shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pacs import ids, log_events
from pacs.clients import Clients
from pacs.errors import BadRequest, Forbidden, NotFound
from pacs.indexing import catalog
from pacs.json_values import plain
from pacs.links import access_log, signing

KEY = re.compile(r"^[0-9a-f]{32}$")
STUDY_FIELDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription",
                "AccessionNumber", "StudyID", "PatientName", "PatientID", "PatientBirthDate",
                "PatientSex", "ReferringPhysicianName", "ModalitiesInStudy", "series_count",
                "instance_count", "modalities")
SERIES_FIELDS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
                 "BodyPartExamined", "instance_count")
INSTANCE_FIELDS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber", "ImagePositionPatient",
                   "ImageOrientationPatient", "SliceLocation", "Rows", "Columns",
                   "NumberOfFrames", "TransferSyntaxUID", "size", "sha256")


@dataclass(frozen=True)
class Minter:
    """What minting URLs needs: the cloud clients, the signer and a clock.

    Attributes
    ----------
    clients : pacs.clients.Clients
    signer : pacs.links.signing.UrlSigner
    now : callable
        Returns the current aware datetime (injected in tests).
    """

    clients: Clients
    signer: signing.UrlSigner
    now: Callable[[], datetime] = signing.utc_now

    @property
    def settings(self) -> Any:
        return self.clients.settings

    def sign(self, refs: list[signing.ObjectRef], ttl: int) -> list[str]:
        return signing.sign_many(self.clients.storage, self.signer, refs, ttl,
                                 self.settings.signed_url_endpoint, self.settings.signing_workers)


def study_not_found() -> NotFound:
    """The one answer for a study that does not exist, is not the caller's, or is not
    reachable through a share: the same code and message every time."""
    return NotFound("no such study", code="not_found")


def _study_key(value: Any) -> str:
    # A malformed id cannot exist; it gets the same 404 as a well-formed unknown one.
    if not isinstance(value, str) or not KEY.match(value):
        raise study_not_found()
    return value


def is_restricted(firestore: Any, uid: str, study_key: str) -> bool:
    """Whether processing is restricted for the account or for the study.

    The hook of the restriction flag (issue 6): ``users/{uid}.restricted`` and
    ``studies/{study_key}.restricted``, booleans, absent meaning not restricted. While either
    is true, no manifest is minted and no share is created or honoured.

    Parameters
    ----------
    firestore : google.cloud.firestore.Client
    uid : str
    study_key : str

    Returns
    -------
    bool
    """
    refs = [firestore.collection("users").document(uid), catalog.study_ref(firestore, study_key)]
    for snap in firestore.get_all(refs, field_paths=["restricted"]):
        if snap.exists and (snap.to_dict() or {}).get("restricted") is True:
            return True
    return False


def owned_study(firestore: Any, uid: str, study_key: Any) -> tuple[str, dict[str, Any]]:
    """The study document when ``uid`` owns it; else the study-not-found 404.

    Returns
    -------
    tuple of (str, dict)
        The validated study key and the document.
    """
    key = _study_key(study_key)
    snap = catalog.study_ref(firestore, key).get()
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("owner") != uid:
        raise study_not_found()
    return key, doc


def check_not_restricted(firestore: Any, uid: str, study_key: str) -> None:
    """Raise 403 ``restricted`` for the owner of a restricted account or study."""
    if is_restricted(firestore, uid, study_key):
        raise Forbidden("processing of this study or account is restricted: no links or shares",
                        code="restricted")


def _pick(doc: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: plain(doc.get(k)) for k in fields if k in doc}


def _preview_ref(settings: Any, uid: str, study_key: str, series_key: str,
                 preview: dict[str, Any] | None) -> signing.ObjectRef | None:
    preview = preview or {}
    if preview.get("status") != "ready" or not preview.get("generation"):
        return None
    # Settle writes grey previews as PNG and colour ones as JPEG (``media_type``; a document
    # without one is a PNG). Only the canonical name for that type is signed.
    extension = ids.PREVIEW_EXTENSIONS.get(preview.get("media_type", "image/png"))
    if extension is None:
        return None
    name = ids.preview_object(uid, study_key, series_key, extension)
    if preview.get("object") != name:
        return None  # a document pointing elsewhere is never signed
    return signing.ObjectRef(settings.derived_bucket, name, str(preview["generation"]))


def build_manifest(minter: Minter, uid: str, study_key: str, study: dict[str, Any],
                   not_after: datetime | None = None) -> dict[str, Any]:
    """The manifest of a study the caller may see (ownership checked by the caller).

    Parameters
    ----------
    minter : Minter
    uid : str
        The owner.
    study_key : str
    study : dict
        The study document.
    not_after : datetime, optional
        No URL outlives this (a share's expiry).

    Returns
    -------
    dict
        ``study_id``, ``study`` (metadata), ``series`` (each with ``preview`` status, ``url``
        when ready), ``expires_at``, ``ttl_seconds``, ``series_page_size``.
    """
    fs = minter.clients.firestore
    settings = minter.settings
    series = []
    for snap in catalog.study_ref(fs, study_key).collection("series").stream():
        doc = snap.to_dict() or {}
        if doc.get("owner") != uid:
            continue
        series.append((snap.id, doc))
    series.sort(key=lambda s: (s[1].get("SeriesNumber") is None, s[1].get("SeriesNumber") or 0,
                               s[0]))
    issued = minter.now()
    ttl = signing.link_ttl(settings, issued, not_after)
    refs = [_preview_ref(settings, uid, study_key, key, doc.get("preview")) for key, doc in series]
    wanted = [r for r in refs if r is not None]
    urls = iter(minter.sign(wanted, ttl))
    expires_at = signing.iso(signing.expiry_of_batch(issued, ttl))
    entries = []
    for (key, doc), ref in zip(series, refs, strict=True):
        preview = {"status": (doc.get("preview") or {}).get("status", "none")}
        if ref is not None:
            preview.update(url=next(urls), expires_at=expires_at)
        entries.append({"series_id": key, **_pick(doc, SERIES_FIELDS), "preview": preview})
    return {
        "study_id": study_key,
        "study": _pick(study, STUDY_FIELDS),
        "series": entries,
        "issued_at": signing.iso(issued),
        "expires_at": expires_at,
        "ttl_seconds": ttl,
        "series_page_size": settings.series_page_size,
    }


def _page_size(settings: Any, requested: Any) -> int:
    if requested is None:
        return settings.series_page_size
    if not isinstance(requested, int) or isinstance(requested, bool) or not (
            1 <= requested <= settings.series_page_size):
        raise BadRequest(f"page_size must be 1 to {settings.series_page_size}",
                         code="bad_page_size")
    return requested


def series_page(minter: Minter, uid: str, study_key: str, series_key: Any,
                page_token: Any = None, page_size: Any = None,
                not_after: datetime | None = None) -> dict[str, Any]:
    """Signed URLs for one page of a series' instances (ownership of the study checked by
    the caller), in instance-id order; ``next_page_token`` continues.

    Returns
    -------
    dict
        ``series_id``, ``instances`` (metadata, ``instance_id``, ``url``), ``expires_at``,
        ``ttl_seconds``, ``next_page_token``.
    """
    from google.cloud.firestore_v1.field_path import FieldPath

    if not isinstance(series_key, str) or not KEY.match(series_key):
        raise NotFound("no such series", code="not_found")
    if page_token is not None and (not isinstance(page_token, str) or not KEY.match(page_token)):
        raise BadRequest("bad page token", code="bad_page_token")
    settings = minter.settings
    size = _page_size(settings, page_size)
    fs = minter.clients.firestore
    series_ref = catalog.series_ref(fs, study_key, series_key)
    series_snap = series_ref.get()
    if not series_snap.exists or (series_snap.to_dict() or {}).get("owner") != uid:
        raise NotFound("no such series", code="not_found")
    instances = series_ref.collection("instances")
    query = (instances.select(list(INSTANCE_FIELDS) + ["owner", "object", "generation"])
             .order_by(FieldPath.document_id()).limit(size))
    if page_token:
        query = query.start_after({FieldPath.document_id(): instances.document(page_token)})
    snaps = list(query.stream())
    issued = minter.now()
    ttl = signing.link_ttl(settings, issued, not_after)
    rows, refs = [], []
    for snap in snaps:
        doc = snap.to_dict() or {}
        name = ids.instance_object(uid, study_key, snap.id)
        ref = None
        if doc.get("owner") == uid and doc.get("object") == name and doc.get("generation"):
            ref = signing.ObjectRef(settings.instances_bucket, name, str(doc["generation"]))
        rows.append({"instance_id": snap.id, **_pick(doc, INSTANCE_FIELDS)})
        refs.append(ref)
    wanted = [r for r in refs if r is not None]
    urls = iter(minter.sign(wanted, ttl))
    for row, ref in zip(rows, refs, strict=True):
        row["url"] = next(urls) if ref is not None else None
    return {
        "study_id": study_key,
        "series_id": series_key,
        "instances": rows,
        "issued_at": signing.iso(issued),
        "expires_at": signing.iso(signing.expiry_of_batch(issued, ttl)),
        "ttl_seconds": ttl,
        "next_page_token": snaps[-1].id if len(snaps) == size else None,
    }


# --- The owner's requests ---------------------------------------------------------------

def owner_manifest(minter: Minter, uid: str, body: dict[str, Any],
                   client: access_log.ClientInfo) -> dict[str, Any]:
    """``POST /manifest {study_id}``: the owner's manifest of one study."""
    fs = minter.clients.firestore
    key, study = owned_study(fs, uid, body.get("study_id"))
    check_not_restricted(fs, uid, key)
    manifest = build_manifest(minter, uid, key, study)
    signed = sum(1 for s in manifest["series"] if s["preview"].get("url"))
    access_log.record(fs, owner=uid, study_key=key, kind="manifest", actor=uid,
                      actor_type="owner", client=client, at=minter.now(),
                      details={"urls": signed, "expires_at": manifest["expires_at"]})
    log_events.emit("INFO", "manifest_minted", "manifest minted", uid=uid, study=key[:16],
                    urls=signed, signer=minter.signer.kind)
    return manifest


def owner_series(minter: Minter, uid: str, body: dict[str, Any],
                 client: access_log.ClientInfo) -> dict[str, Any]:
    """``POST /series {study_id, series_id, page_token?, page_size?}``: one page of signed
    instance URLs of one series of the owner's study."""
    fs = minter.clients.firestore
    key, _ = owned_study(fs, uid, body.get("study_id"))
    check_not_restricted(fs, uid, key)
    page = series_page(minter, uid, key, body.get("series_id"), body.get("page_token"),
                       body.get("page_size"))
    record_series(fs, page, owner=uid, actor=uid, actor_type="owner", client=client,
                  at=minter.now())
    return page


def record_series(firestore: Any, page: dict[str, Any], *, owner: str, actor: str,
                  actor_type: str, client: access_log.ClientInfo, at: datetime,
                  share_id: str | None = None) -> None:
    """The access record of one page of series URLs (before the URLs are returned)."""
    signed = sum(1 for i in page["instances"] if i.get("url"))
    details = {"series_id": page["series_id"], "urls": signed, "expires_at": page["expires_at"]}
    if share_id:
        details["share_id"] = share_id
    access_log.record(firestore, owner=owner, study_key=page["study_id"], kind="series_urls",
                      actor=actor, actor_type=actor_type, client=client, at=at, details=details)
    log_events.emit("INFO", "series_urls_minted", "series URLs minted", uid=owner,
                    study=page["study_id"][:16], series=page["series_id"][:16], urls=signed,
                    share=share_id)
