"""Short-lived, single-use download links for a study ZIP (the browser's "Download (ZIP)").

A browser cannot put an ``Authorization`` header on a plain download, and a ZIP fetched by
script would be held whole in the page's memory; an ID token in a URL would leak into
histories and logs. So the signed-in page asks for a link
(``POST /studies/{study}/download-link`` with its bearer token) and navigates to it: the
link is ``<dicomweb own URL>/downloads/<token>``, valid for ``LINK_SECONDS`` and for one use.
It points at the function's own URL, not the Hosting origin, because Hosting cuts responses
at 60 s; the function's timeout is the longer transfer timeout of the deploy plan.

Stored: ``download_links/{sha256(token)}`` with the owner, the study key and the expiry
(never the token). Creating one runs in a transaction with the owner's erasure marker and the
study's deletion record (:func:`pacs.markers.guarded_write`), and deletes the owner's expired
links (deployed, a Firestore TTL policy on ``expires_at``, set by the deploy plan, removes
the rest). Opening one deletes it in a transaction (a second use, an expired or unknown token:
the same 404), then re-checks that the study is still the owner's.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pacs import ids, markers
from pacs.clients import Clients
from pacs.dicomweb import qido
from pacs.errors import Forbidden, NotFound, TransientError
from pacs.indexing import catalog
from pacs.links import manifests

COLLECTION = "download_links"
LINK_SECONDS = 120
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
EXPIRED_SWEEP = 50


def _not_found() -> NotFound:
    return NotFound("no such download link (they work once, for two minutes)",
                    code="not_found")


def _ref(fs: Any, token: str) -> Any:
    digest = hashlib.sha256(token.encode("ascii")).hexdigest()
    return fs.collection(COLLECTION).document(digest)


def direct_base(clients: Clients, request_base: str) -> str:
    """The function's own base URL: deployed, its ``cloudfunctions.net`` URL (from the region
    and project); locally, the URL the request reached (the function process itself)."""
    settings = clients.settings
    if settings.project_id.startswith("demo-"):
        return request_base.rstrip("/")
    return f"https://{settings.region}-{settings.project_id}.cloudfunctions.net/dicomweb"


def create_link(clients: Clients, uid: str, study_uid: str, base: str,
                now: datetime | None = None) -> dict[str, Any]:
    """A link to one of the caller's studies as a ZIP: ``{url, expires_at}``.

    Raises NotFound (not the caller's study, the same for all reasons), Forbidden
    (``erasure_in_progress``) or TransientError (the study is being deleted).
    """
    now = now or datetime.now(UTC)
    fs, key = clients.firestore, clients.settings.hash_key
    if not qido.is_uid(study_uid):
        raise NotFound("no such study", code="not_found")
    study_key = ids.study_key(key, uid, study_uid)
    manifests.check_not_restricted(fs, uid, study_key)  # 403 restricted
    study = catalog.study_ref(fs, study_key)
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=LINK_SECONDS)

    def write(transaction: Any, study_snap: Any) -> None:
        if not study_snap.exists or (study_snap.to_dict() or {}).get("owner") != uid:
            raise NotFound("no such study", code="not_found")
        transaction.create(_ref(fs, token), {"owner": uid, "study_key": study_key,
                                             "created_at": now, "expires_at": expires})

    try:
        markers.guarded_write(fs, key, uid, write, (study,), study=study_key)
    except markers.ErasureBegan:
        raise Forbidden("this account is being erased", code="erasure_in_progress") from None
    except markers.StudyDeleted:
        raise NotFound("no such study", code="not_found") from None
    _sweep_expired(fs, uid, now)
    return {"url": f"{base.rstrip('/')}/downloads/{token}",
            "expires_at": expires.isoformat().replace("+00:00", "Z")}


def _sweep_expired(fs: Any, uid: str, now: datetime) -> None:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (fs.collection(COLLECTION).where(filter=FieldFilter("owner", "==", uid))
             .limit(EXPIRED_SWEEP))
    for snap in query.stream():
        expires = (snap.to_dict() or {}).get("expires_at")
        if expires is not None and expires < now:
            snap.reference.delete()


@dataclass(frozen=True)
class Redeemed:
    """Whose study a link opened: the owner and the StudyInstanceUID."""

    uid: str
    study_uid: str


def redeem(clients: Clients, token: str, now: datetime | None = None) -> Redeemed:
    """Use a link once: delete it and answer whose study it opens.

    Raises NotFound for a malformed, unknown, used or expired token and for a study that is
    no longer the owner's (deleted meanwhile).
    """
    from google.cloud import firestore as gfs

    now = now or datetime.now(UTC)
    if not _TOKEN.fullmatch(token):
        raise _not_found()
    fs = clients.firestore
    ref = _ref(fs, token)

    @gfs.transactional
    def take(transaction: Any) -> dict[str, Any] | None:
        snap = ref.get(transaction=transaction)
        if not snap.exists:
            return None
        transaction.delete(ref)
        return snap.to_dict() or {}

    try:
        doc = take(fs.transaction())
    except ValueError as err:
        if "Failed to commit transaction" not in str(err):
            raise
        raise TransientError("busy: try again", code="busy") from None
    if not doc or doc.get("expires_at") is None or doc["expires_at"] < now:
        raise _not_found()
    study = catalog.study_ref(fs, doc["study_key"]).get()
    data = study.to_dict() if study.exists else None
    if not data or data.get("owner") != doc.get("owner") or not data.get("StudyInstanceUID"):
        raise _not_found()
    return Redeemed(doc["owner"], str(data["StudyInstanceUID"]))
