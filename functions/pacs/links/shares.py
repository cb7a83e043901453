"""Share links: an owner lets anyone holding a token view one study, for a while.

A share is ``shares/{share_id}``: owner, study, the SHA-256 of its token (the token itself is
never stored), expiry (default 24 h, at most 7 days), an optional view limit, a view count
and a revocation flag. The token is ``{share_id}.{43 random url-safe characters}`` (256
random bits); the link is ``{viewer origin}/view#{token}``: browsers never send the fragment,
and the viewer POSTs the token, so it stays out of request logs.

Exchanging the token (:func:`share_manifest`) counts one view atomically (compare-and-set) and
returns the same short-lived manifest the owner gets, plus a *view* string that lets the
viewer fetch the series' URLs (:func:`share_series`) during that view without counting more
views; paging checks the view against the share document too (a view the share could not
have issued, by number or expiry, is refused even with a valid MAC). An unknown, expired, revoked or exhausted token, and a share whose study is gone or
restricted, all get the same 404. Revoking stops new manifests at once; URLs already handed
out die within their lifetime (at most the link lifetime, never past the share's expiry).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from pacs import ids, log_events
from pacs.errors import BadRequest, Forbidden, NotFound, TransientError
from pacs.indexing import catalog
from pacs.links import access_log, copy_manifest, deidentified, manifests, signing

COLLECTION = "shares"
TOKEN = re.compile(r"^([0-9a-f]{20})\.([A-Za-z0-9_-]{43})$")
SHARE_ID = re.compile(r"^[0-9a-f]{20}$")
VIEW = re.compile(r"^([0-9a-f]{20})\.([0-9]{1,9})\.([0-9]{1,12})\.([0-9a-f]{32})$")
LIST_MAX = 500
TRANSACTION_ATTEMPTS = 20  # revocation (rare, owner only)
COUNT_ATTEMPTS = 50  # compare-and-set rounds of one view count (see _count_view)


def share_not_found() -> NotFound:
    """The one answer for every token that does not open a study, whatever the reason."""
    return NotFound("no such share", code="not_found")


def token_hash(token: str) -> str:
    """SHA-256 of a share token (hex): what is stored instead of the token."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh ``(share_id, token)``."""
    share_id = secrets.token_hex(10)
    return share_id, f"{share_id}.{secrets.token_urlsafe(32)}"


def _ref(firestore: Any, share_id: str) -> Any:
    return firestore.collection(COLLECTION).document(share_id)


def _run_transaction(firestore: Any, function: Any) -> Any:
    """Run a ``@transactional`` function; contention past the attempts is a 503, not a 500."""
    try:
        return function(firestore.transaction(max_attempts=TRANSACTION_ATTEMPTS))
    except ValueError as err:
        if "Failed to commit transaction" not in str(err):
            raise
        raise TransientError("busy: try again", code="busy") from None


def _int_field(body: dict[str, Any], name: str, default: int | None, low: int,
               high: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}",
                         code=f"bad_{name}")
    return value


def status_of(doc: dict[str, Any], now: datetime) -> str:
    """``active``, ``revoked``, ``expired`` or ``exhausted``."""
    if doc.get("revoked"):
        return "revoked"
    if doc["expires_at"] <= now:
        return "expired"
    if doc.get("max_views") is not None and doc.get("views", 0) >= doc["max_views"]:
        return "exhausted"
    return "active"


def public_share(share_id: str, doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What the owner sees of a share (never the token hash)."""
    def when(value: Any) -> str | None:
        return signing.iso(value) if isinstance(value, datetime) else None

    return {"share_id": share_id, "study_id": doc.get("study_key"),
            "created_at": when(doc.get("created_at")), "expires_at": when(doc.get("expires_at")),
            "max_views": doc.get("max_views"), "views": doc.get("views", 0),
            "revoked": bool(doc.get("revoked")), "revoked_at": when(doc.get("revoked_at")),
            "last_used_at": when(doc.get("last_used_at")), "status": status_of(doc, now),
            "deidentified": bool(doc.get("deidentified")),
            "left_out": (doc.get("copy") or {}).get("left_out", {}),
            "copy_status": (doc.get("copy") or {}).get("status")}


# --- The owner's side --------------------------------------------------------------------

def create_share(minter: manifests.Minter, uid: str, body: dict[str, Any],
                 client: access_log.ClientInfo) -> dict[str, Any]:
    """``POST /shares {study_id, expires_in_seconds?, max_views?, deidentified?}``.

    With ``deidentified: true`` the recipient gets a de-identified copy made now
    (:mod:`pacs.links.deidentified`), never the study itself.

    Returns
    -------
    dict
        ``share_id``, ``token`` (shown this once), ``url``, ``expires_at``, ``max_views``,
        ``deidentified``; for a de-identified share also ``copied`` and ``left_out``
        (reason -> count of instances not in the copy).
    """
    settings = minter.settings
    fs = minter.clients.firestore
    key, _ = manifests.owned_study(fs, uid, body.get("study_id"))
    manifests.check_not_restricted(fs, uid, key)
    ttl = _int_field(body, "expires_in_seconds", settings.share_ttl_seconds, 1,
                     settings.share_ttl_cap_seconds)
    max_views = _int_field(body, "max_views", None, 1, settings.share_max_views_cap)
    deid = body.get("deidentified", False)
    if not isinstance(deid, bool):
        raise BadRequest("deidentified must be true or false", code="bad_deidentified")
    now = minter.now()
    share_id, token = new_token()
    doc = {"owner": uid, "study_key": key, "token_hash": token_hash(token), "created_at": now,
           "expires_at": now + timedelta(seconds=ttl), "max_views": max_views, "views": 0,
           "revoked": False, "revoked_at": None, "last_used_at": None, "deidentified": deid}
    if deid:  # not usable until the copy is made (a manifest needs ``copy``)
        doc["copy"] = {"status": "copying"}
    _ref(fs, share_id).create(doc)
    extra: dict[str, Any] = {}
    if deid:
        try:
            made = deidentified.make_copy(minter.clients, uid, key, share_id)
        except BaseException:
            _ref(fs, share_id).delete()
            raise
        doc["copy"] = made["copy"]  # ready, or preparing: further runs are queued
        # Counts toward the owner's quota while it lives (the whole study's size, reserved,
        # while it is being prepared).
        doc["copy_bytes"] = made["bytes"] if made["done"] else made["copy"]["reserved"]
        update = {"copy": doc["copy"], "copy_bytes": doc["copy_bytes"]}
        if not made["done"]:  # the next runs need the copy's secret
            update[deidentified.SECRET_FIELD] = made["secret"]
        _ref(fs, share_id).update(update)
        if not made["done"]:
            deidentified.queue_run(minter.clients, uid, share_id)
        extra = {"copied": made["copied"], "left_out": made["left_out"],
                 "copy_status": doc["copy"]["status"]}
    access_log.record(fs, owner=uid, study_key=key, kind="share_created", actor=uid,
                      actor_type="owner", client=client, at=now,
                      details={"share_id": share_id, "expires_at": signing.iso(doc["expires_at"]),
                               "max_views": max_views, "deidentified": deid})
    log_events.emit("INFO", "share_created", "share created", uid=uid, study=key[:16],
                    share=share_id, deidentified=deid)
    return {"share_id": share_id, "study_id": key, "token": token,
            "url": f"{settings.viewer_origin}/view#{token}",
            "expires_at": signing.iso(doc["expires_at"]), "max_views": max_views,
            "deidentified": deid, **extra}


def list_shares(minter: manifests.Minter, uid: str) -> dict[str, Any]:
    """``GET /shares``: the owner's shares, newest first (at most :data:`LIST_MAX`)."""
    now = minter.now()
    query = list_query(minter.clients.firestore, uid)
    return {"shares": [public_share(s.id, s.to_dict() or {}, now) for s in query.stream()]}


def list_query(firestore: Any, uid: str) -> Any:
    """The query of an owner's shares (index: owner, created_at descending)."""
    from google.cloud import firestore as fs
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(COLLECTION).where(filter=FieldFilter("owner", "==", uid))
            .order_by("created_at", direction=fs.Query.DESCENDING).limit(LIST_MAX))


def revoke_share(minter: manifests.Minter, uid: str, share_id: Any,
                 client: access_log.ClientInfo) -> dict[str, Any]:
    """``DELETE /shares/{share_id}``: revoke (idempotent). Not yours = unknown = 404."""
    from google.cloud import firestore as gfs

    if not isinstance(share_id, str) or not SHARE_ID.match(share_id):
        raise share_not_found()
    fs = minter.clients.firestore
    ref = _ref(fs, share_id)
    now = minter.now()

    @gfs.transactional
    def revoke(transaction: Any) -> tuple[dict[str, Any], bool]:
        snap = ref.get(transaction=transaction)
        doc = snap.to_dict() if snap.exists else None
        if not doc or doc.get("owner") != uid:
            raise share_not_found()
        if doc.get("revoked"):
            return doc, False
        transaction.update(ref, {"revoked": True, "revoked_at": now, "copy_bytes": 0})
        return {**doc, "revoked": True, "revoked_at": now}, True

    doc, changed = _run_transaction(fs, revoke)
    if doc.get("deidentified"):  # idempotent: a revocation retried finishes the deletion
        deidentified.delete_copy(minter.clients, uid, share_id)
    if changed:
        access_log.record(fs, owner=uid, study_key=doc["study_key"], kind="share_revoked",
                          actor=uid, actor_type="owner", client=client, at=now,
                          details={"share_id": share_id})
        log_events.emit("INFO", "share_revoked", "share revoked", uid=uid, share=share_id)
    return public_share(share_id, doc, now)


# --- The token holder's side -------------------------------------------------------------

def _usable(doc: dict[str, Any] | None, token: str, now: datetime, new_view: bool) -> bool:
    """The token matches and the share is neither revoked nor expired; a new view also needs
    views left (a view already counted may finish after the last one was used)."""
    if not doc or not hmac.compare_digest(doc.get("token_hash", ""), token_hash(token)):
        return False
    status = status_of(doc, now)
    return status == "active" or (status == "exhausted" and not new_view)


def _open(fs: Any, token: Any, now: datetime, new_view: bool) -> tuple[str, dict[str, Any]]:
    """The share a token opens, when it is usable now (no view counted)."""
    match = TOKEN.match(token) if isinstance(token, str) else None
    if not match:
        raise share_not_found()
    share_id = match.group(1)
    snap = _ref(fs, share_id).get()
    doc = snap.to_dict() if snap.exists else None
    if not _usable(doc, token, now, new_view):
        raise share_not_found()
    return share_id, doc


def _open_study(fs: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """The shared study, while it exists, is still the share owner's and is not restricted."""
    owner, key = doc["owner"], doc["study_key"]
    snap = catalog.study_ref(fs, key).get()
    study = snap.to_dict() if snap.exists else None
    if not study or study.get("owner") != owner or manifests.is_restricted(fs, owner, key):
        raise share_not_found()
    return study


def _count_view(fs: Any, share_id: str, token: str, now: datetime) -> int:
    """Count one view atomically; the share must still be usable. Returns the view number.

    Compare-and-set: the update carries the read's ``update_time`` as a precondition, so of
    concurrent exchanges exactly one wins each count and the others re-read and retry (or
    find the share exhausted). Unlike a read-write transaction, losers never wait on a lock,
    which keeps a burst of viewers of one link fast.
    """
    from google.api_core.exceptions import Aborted, FailedPrecondition

    ref = _ref(fs, share_id)
    for attempt in range(COUNT_ATTEMPTS):
        snap = ref.get()
        doc = snap.to_dict() if snap.exists else None
        if not _usable(doc, token, now, new_view=True):
            raise share_not_found()
        views = int(doc.get("views", 0)) + 1
        try:
            ref.update({"views": views, "last_used_at": now},
                       option=fs.write_option(last_update_time=snap.update_time))
            return views
        except (FailedPrecondition, Aborted):
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
    raise TransientError("busy: try again", code="busy")


def _view_mac(key: bytes, share_id: str, view: str, expires: str) -> str:
    return ids.keyed_hash(key, "share-view", share_id, view, expires)


def make_view(key: bytes, share_id: str, view: int, expires_at: datetime) -> str:
    """The view string of one exchange: share id, view number, expiry, keyed MAC."""
    expires = str(int(expires_at.timestamp()))
    return f"{share_id}.{view}.{expires}.{_view_mac(key, share_id, str(view), expires)}"


def check_view(key: bytes, share_id: str, view: Any, now: datetime) -> tuple[int, int]:
    """Raise unless ``view`` carries this share's MAC and has not expired; return its view
    number and expiry (Unix seconds) for :func:`check_view_in_share`."""
    match = VIEW.match(view) if isinstance(view, str) else None
    if not match or match.group(1) != share_id or not hmac.compare_digest(
            match.group(4), _view_mac(key, share_id, match.group(2), match.group(3))):
        raise share_not_found()
    if int(match.group(3)) <= now.timestamp():
        raise NotFound("this view has expired: open the share link again", code="view_expired")
    return int(match.group(2)), int(match.group(3))


def check_view_in_share(number: int, expires: int, doc: dict[str, Any]) -> None:
    """Raise 403 ``view_not_valid`` unless the share document could have issued this view:
    its number at least 1, at most the views counted and at most ``max_views``, and its
    expiry no later than the share's. The MAC alone is not trusted: whoever holds the key
    could mint a view expiring in 2100, or page an exhausted share past ``max_views``."""
    max_views = doc.get("max_views")
    issued = number >= 1 and number <= int(doc.get("views", 0))
    within = max_views is None or number <= max_views
    if not (issued and within and expires <= doc["expires_at"].timestamp()):
        raise Forbidden("this view was not issued by this share: open the share link again",
                        code="view_not_valid")


def open_view(fs: Any, key: bytes, token: Any, view: Any, now: datetime
              ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(share_id, share, study)`` for a request made during a view (DICOMweb with the
    share's headers): the token opens a share that is neither revoked nor expired, the view
    was issued by it (:func:`check_view`, :func:`check_view_in_share`), and its study still
    exists, is the owner's and is not restricted. No view is counted."""
    share_id, doc = _open(fs, token, now, new_view=False)
    if doc.get("deidentified") and (doc.get("copy") or {}).get("status") != "ready":
        raise share_not_found()  # its copy is served (pacs.dicomweb.copy_view) once made
    number, expires = check_view(key, share_id, view, now)
    check_view_in_share(number, expires, doc)
    return share_id, doc, _open_study(fs, doc)


def _copy_manifest(minter: manifests.Minter, share_id: str, doc: dict[str, Any]
                   ) -> dict[str, Any]:
    status = (doc.get("copy") or {}).get("status")
    if status == "preparing":
        raise NotFound("the de-identified copy is still being prepared: try again in a few "
                       "minutes", code="copy_preparing")
    if status != "ready":
        raise share_not_found()
    issued = minter.now()
    ttl = signing.link_ttl(minter.settings, issued, doc["expires_at"])
    return copy_manifest.copy_manifest(minter, share_id, doc, issued, ttl,
                                       signing.iso(signing.expiry_of_batch(issued, ttl)))


def share_manifest(minter: manifests.Minter, body: dict[str, Any],
                   client: access_log.ClientInfo) -> dict[str, Any]:
    """``POST /share/manifest {token}`` (no sign-in): count a view, return the manifest and
    the ``view`` for :func:`share_series`."""
    fs = minter.clients.firestore
    token = body.get("token")
    share_id, doc = _open(fs, token, minter.now(), new_view=True)
    study = _open_study(fs, doc)
    views = _count_view(fs, share_id, token, minter.now())
    owner, key = doc["owner"], doc["study_key"]
    if doc.get("deidentified"):
        manifest = _copy_manifest(minter, share_id, doc)
    else:
        manifest = manifests.build_manifest(minter, owner, key, study,
                                            not_after=doc["expires_at"])
    expires_at = datetime.fromisoformat(manifest["expires_at"].replace("Z", "+00:00"))
    manifest["view"] = make_view(minter.settings.hash_key, share_id, views, expires_at)
    manifest["share"] = {"expires_at": signing.iso(doc["expires_at"]),
                         "max_views": doc.get("max_views"), "views": views}
    signed = sum(1 for s in manifest["series"] if s["preview"].get("url"))
    access_log.record(fs, owner=owner, study_key=key, kind="share_used", actor=share_id,
                      actor_type="share", client=client, at=minter.now(),
                      details={"share_id": share_id, "view": views, "urls": signed,
                               "expires_at": manifest["expires_at"]})
    log_events.emit("INFO", "share_used", "share exchanged for a manifest", uid=owner,
                    study=key[:16], share=share_id, view=views)
    return manifest


def share_series(minter: manifests.Minter, body: dict[str, Any],
                 client: access_log.ClientInfo) -> dict[str, Any]:
    """``POST /share/series {token, view, series_id, page_token?, page_size?}`` (no sign-in):
    one page of a shared study's series URLs, during a view."""
    fs = minter.clients.firestore
    token = body.get("token")
    now = minter.now()
    share_id, doc = _open(fs, token, now, new_view=False)
    number, expires = check_view(minter.settings.hash_key, share_id, body.get("view"), now)
    check_view_in_share(number, expires, doc)
    _open_study(fs, doc)
    owner, key = doc["owner"], doc["study_key"]
    if doc.get("deidentified"):
        issued = minter.now()
        ttl = signing.link_ttl(minter.settings, issued, doc["expires_at"])
        page = copy_manifest.copy_series_page(
            minter, share_id, doc, body.get("series_id"), body.get("page_token"), issued, ttl,
            signing.iso(signing.expiry_of_batch(issued, ttl)))
    else:
        page = manifests.series_page(minter, owner, key, body.get("series_id"),
                                     body.get("page_token"), body.get("page_size"),
                                     not_after=doc["expires_at"])
    manifests.record_series(fs, page, owner=owner, actor=share_id, actor_type="share",
                        client=client, at=minter.now(), share_id=share_id)
    return page
