"""Who a DICOMweb request is: one :class:`Credential` from any of three ways in.

- ``Authorization: Bearer <Firebase ID token>``, verified with ``check_revoked``: the
  account's own user, scope ``read-write``.
- ``Authorization: Bearer pacsk_…``: an API key (:mod:`pacs.keys.api_keys`), with its
  scope. The use is counted in the key's access record of the day, in a transaction that
  reads the owner's erasure marker, the account's restriction flag and the key again, so
  a revocation, a restriction or an erasure refuses every request that commits after it.
- ``X-Share-Token: <token>`` with ``X-Share-View: <view>``: a share (read-only, exactly one
  study). The view is what ``POST /share/manifest`` returns when it counts a view, so
  DICOMweb honours the share's expiry, revocation, view limit and restriction exactly as
  the web viewer does; the token travels in a header, never in a URL. The use is counted
  in the share's access record of the day.

Sending a share's headers and an ``Authorization`` header together is refused (400): a
request has one identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pacs import ids, markers
from pacs.auth import bearer_token, verify_caller
from pacs.errors import AuthError, BadRequest, Forbidden
from pacs.keys import api_keys
from pacs.links import access_log, shares

SHARE_TOKEN_HEADER = "X-Share-Token"
SHARE_VIEW_HEADER = "X-Share-View"
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
        That study's StudyInstanceUID.
    """

    uid: str
    scope: str
    kind: str
    credential_id: str | None = None
    study_key: str | None = None
    study_uid: str | None = None

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
    has_authorization = bool(_header(headers, "Authorization"))
    if share_token and has_authorization:
        raise BadRequest("send either Authorization or the share headers, not both",
                         code="ambiguous_credentials")
    if share_token:
        return _share(clients, share_token, _header(headers, SHARE_VIEW_HEADER), client, now)
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

    def write(transaction: Any, key_snap: Any, user_snap: Any) -> dict[str, Any]:
        restricted = user_snap.exists and (user_snap.to_dict() or {}).get("restricted") is True
        current = api_keys.check_key(key_id, key_snap.to_dict() if key_snap.exists else None,
                                     secret, hash_key, now, restricted)
        access_log.daily_write(transaction, fs, record_id=access_log.daily_id("k", key_id, now),
                               owner=uid, study_key=None, kind="api_key_used", actor=key_id,
                               actor_type="api_key", client=client, at=now)
        last = current.get("last_used_at")
        if not isinstance(last, datetime) or now - last >= api_keys.LAST_USE_STEP:
            transaction.update(ref, {"last_used_at": now})
        return current

    current = _guarded(fs, hash_key, uid, write, (ref, user))
    return Credential(uid, current["scope"], API_KEY, key_id)


def _share(clients: Any, token: str, view: str | None, client: access_log.ClientInfo,
           now: datetime) -> Credential:
    fs, hash_key = clients.firestore, clients.settings.hash_key
    if not view:
        raise AuthError(f"a share needs its view in {SHARE_VIEW_HEADER}: open the share "
                        "(POST /share/manifest) first", code="share_view_required")
    share_id, doc, study = shares.open_view(fs, hash_key, token, view, now)
    owner, study_key = doc["owner"], doc["study_key"]

    def write(transaction: Any) -> None:
        access_log.daily_write(transaction, fs,
                               record_id=access_log.daily_id("s", share_id, now), owner=owner,
                               study_key=study_key, kind="share_dicomweb", actor=share_id,
                               actor_type="share", client=client, at=now)

    _guarded(fs, hash_key, owner, write, ())
    study_uid = study.get("StudyInstanceUID")
    if not study_uid or ids.study_key(hash_key, owner, study_uid) != study_key:
        raise shares.share_not_found()
    return Credential(owner, api_keys.READ, SHARE, share_id, study_key, study_uid)


def _guarded(fs: Any, hash_key: bytes, uid: str, write: Any, reads: tuple[Any, ...]) -> Any:
    try:
        return markers.guarded_write(fs, hash_key, uid, write, reads)
    except markers.ErasureBegan:
        raise Forbidden("this account is being erased", code="erasure_in_progress") from None
