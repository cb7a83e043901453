"""Who a DICOMweb request is: one :class:`Credential` from any of three ways in.

- ``Authorization: Bearer <Firebase ID token>``, verified with ``check_revoked``: the
  account's own user, scope ``read-write``.
- ``Authorization: Bearer pacsk_…``: an API key (:mod:`pacs.keys.api_keys`), with its
  scope. Each request reads the key, the account's restriction flag and the owner's erasure
  marker again (one round trip), so a revocation, a restriction or an erasure refuses every
  request after it; the use is counted in the key's access record of the day, written
  blind and checked against the erasure marker after (:func:`_count`).
- ``X-Share-Token: <token>`` with ``X-Share-View: <view>``: a share (read-only, exactly one
  study). The view is what ``POST /share/manifest`` returns when it counts a view, so
  DICOMweb honours the share's expiry, revocation, view limit and restriction exactly as
  the web viewer does; the token travels in a header, never in a URL. The use is counted
  in the share's access record of the day. A de-identified share reaches its copy only,
  under the copy's UIDs (:attr:`Credential.copy`).
- ``Authorization: Share <token> <view>``: the same share, for clients that can send only
  an ``Authorization`` header (OHIF's DICOMweb data source forwards nothing else; the
  hosted OHIF's share recipients use it, web/ohif/share.ts).

Sending a share's headers and an ``Authorization`` header together is refused (400): a
request has one identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pacs import ids, markers
from pacs.auth import bearer_token, verify_caller
from pacs.errors import AuthError, BadRequest, Forbidden
from pacs.keys import api_keys
from pacs.links import access_log, shares

SHARE_TOKEN_HEADER = "X-Share-Token"
SHARE_VIEW_HEADER = "X-Share-View"
SHARE_SCHEME = "Share"  # Authorization: Share <token> <view>
ID_TOKEN, API_KEY, SHARE = "id_token", "api_key", "share"


@dataclass(frozen=True)
class Credential:
    """A verified DICOMweb caller.

    Attributes
    ----------
    uid : str
        The account whose studies the request reaches.
    scope : str
        ``read`` or ``read-write``.
    kind : str
        ``id_token``, ``api_key`` or ``share``.
    credential_id : str or None
        The key id or share id (None for an ID token).
    study_key : str or None
        A share's one study (its keyed id); None: every study of the account.
    study_uid : str or None
        That study's StudyInstanceUID (a de-identified share: its copy's).
    copy : dict or None
        A de-identified share's ``copy_index`` (:mod:`pacs.links.copy_metadata`): DICOMweb
        serves that copy (:mod:`pacs.dicomweb.copy_view`), never the study.
    """

    uid: str
    scope: str
    kind: str
    credential_id: str | None = None
    study_key: str | None = None
    study_uid: str | None = None
    copy: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def can_write(self) -> bool:
        return self.scope == api_keys.READ_WRITE

    def require_write(self, what: str) -> None:
        """403 ``insufficient_scope`` unless the credential may change data."""
        if not self.can_write:
            raise Forbidden(f"{what} needs a read-write credential (this one is read-only)",
                            code="insufficient_scope")

    def allows_study(self, study_uid: str) -> bool:
        """Whether a request may reach this StudyInstanceUID (a share: only its own)."""
        return self.study_uid is None or study_uid == self.study_uid

    def study_search(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]] | None:
        """A search's parameters limited to what the credential may see: for a share, its
        one study (a StudyInstanceUID list without it matches nothing: None)."""
        items = list(items)
        if self.study_uid is None:
            return items
        asked = [v for k, v in items if k in ("StudyInstanceUID", "0020000D")]
        if any(self.study_uid not in value.split("\\") for value in asked):
            return None
        return [(k, v) for k, v in items if k not in ("StudyInstanceUID", "0020000D")] + [
            ("StudyInstanceUID", self.study_uid)]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name) or headers.get(name.lower())
    return value.strip() if value else None


def resolve(headers: Mapping[str, str], clients: Any, client: access_log.ClientInfo,
            now: datetime) -> Credential:
    """The request's credential (see the module docstring); 401/403 when none holds."""
    share_token = _header(headers, SHARE_TOKEN_HEADER)
    authorization = _header(headers, "Authorization")
    if share_token and authorization:
        raise BadRequest("send either Authorization or the share headers, not both",
                         code="ambiguous_credentials")
    if share_token:
        return _share(clients, share_token, _header(headers, SHARE_VIEW_HEADER), client, now)
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == SHARE_SCHEME.lower():
        token, _, view = credentials.strip().partition(" ")
        return _share(clients, token, view.strip() or None, client, now)
    token = bearer_token(headers)
    if api_keys.is_api_key(token):
        return _api_key(clients, token, client, now)
    return Credential(verify_caller(headers, clients.firebase_app).uid, api_keys.READ_WRITE,
                      ID_TOKEN)


def _api_key(clients: Any, token: str, client: access_log.ClientInfo, now: datetime
             ) -> Credential:
    fs, hash_key = clients.firestore, clients.settings.hash_key
    key_id, secret, doc = api_keys.lookup(fs, token, hash_key, now)
    uid = doc["owner"]
    ref = api_keys.key_ref(fs, key_id)
    user = fs.collection("users").document(uid)
    marker = markers.erasure_marker_ref(fs, hash_key, uid)
    snaps = {s.reference.path: s for s in fs.get_all([ref, user, marker])}
    if snaps[marker.path].exists:
        raise _erasing()
    user_snap, key_snap = snaps[user.path], snaps[ref.path]
    restricted = user_snap.exists and (user_snap.to_dict() or {}).get("restricted") is True
    current = api_keys.check_key(key_id, key_snap.to_dict() if key_snap.exists else None,
                                 secret, hash_key, now, restricted)
    record_id = access_log.daily_id("k", key_id, now)

    def count(batch: Any) -> None:
        access_log.daily_write(batch, fs, record_id=record_id, owner=uid, study_key=None,
                               kind="api_key_used", actor=key_id, actor_type="api_key",
                               client=client, at=now)
        last = current.get("last_used_at")
        if not isinstance(last, datetime) or now - last >= api_keys.LAST_USE_STEP:
            batch.update(ref, {"last_used_at": now})

    _count(fs, hash_key, uid, record_id, count)
    return Credential(uid, current["scope"], API_KEY, key_id)


def _share(clients: Any, token: str, view: str | None, client: access_log.ClientInfo,
           now: datetime) -> Credential:
    fs, hash_key = clients.firestore, clients.settings.hash_key
    if not view:
        raise AuthError(f"a share needs its view in {SHARE_VIEW_HEADER}: open the share "
                        "(POST /share/manifest) first", code="share_view_required")
    share_id, doc, study = shares.open_view(fs, hash_key, token, view, now)
    owner, study_key = doc["owner"], doc["study_key"]
    if markers.erasure_pending(fs, hash_key, owner):
        raise _erasing()
    record_id = access_log.daily_id("s", share_id, now)

    def count(batch: Any) -> None:
        access_log.daily_write(batch, fs, record_id=record_id, owner=owner,
                               study_key=study_key, kind="share_dicomweb", actor=share_id,
                               actor_type="share", client=client, at=now)

    _count(fs, hash_key, owner, record_id, count)
    study_uid = study.get("StudyInstanceUID")
    if not study_uid or ids.study_key(hash_key, owner, study_uid) != study_key:
        raise shares.share_not_found()
    if doc.get("deidentified"):  # its copy only, under the copy's UIDs
        copy = doc.get("copy_index") or {}
        copy_uid = (copy.get("study") or {}).get("StudyInstanceUID")
        if not copy_uid:
            raise shares.share_not_found()
        return Credential(owner, api_keys.READ, SHARE, share_id, study_key, copy_uid, copy)
    return Credential(owner, api_keys.READ, SHARE, share_id, study_key, study_uid)


def _erasing() -> Forbidden:
    return Forbidden("this account is being erased", code="erasure_in_progress")


def _count(fs: Any, hash_key: bytes, uid: str, record_id: str, count: Any) -> None:
    """Count a use in the credential's record of the day. That record (and the key) is read
    by every request of a viewer's burst, so it is written first, blind (an increment), and
    the erasure marker checked after (:func:`pacs.markers.refusal`): a transaction reading
    it aborted under a dozen parallel requests (500 after five attempts). An erasure that
    began meanwhile takes the record back and refuses the request."""
    batch = fs.batch()
    count(batch)
    batch.commit()
    if markers.refusal(fs, hash_key, uid) == "erased":
        for collection in (access_log.COLLECTION, access_log.CLIENTS):
            fs.collection(collection).document(record_id).delete()
        raise _erasing()


