"""The user's profile and its history: 18+ attestation, rectification, restriction.

``users/{uid}`` holds the profile: ``owner``, ``display_name``, ``email`` (a contact email
the user may correct; the sign-in email is the Auth account's), ``adult_attested`` and
when, the policy version seen at creation, the account-level ``restricted`` flag, and the
current analytics consent (kept by :mod:`pacs.privacy.consent`). Every change is appended to
``users/{uid}/history/{auto-id}`` with what changed, from what to what, and when: creation,
rectification, restricting and lifting a restriction (account or study).

Restriction (GDPR Art. 18) and objection (Art. 21) set the same flags the viewer path
reads (``pacs.links.manifests.is_restricted``): ``users/{uid}.restricted`` for the account,
``studies/{key}.restricted`` for one study. While set, no viewing link or share is minted
or honoured and no analytics event is accepted; the data stays.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pacs.errors import BadRequest, Forbidden, NotFound
from pacs.json_values import plain

USERS = "users"
HISTORY = "history"
DISPLAY_NAME_MAX = 100
EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
RESTRICTION_KINDS = ("restriction", "objection")


def profile_ref(firestore: Any, uid: str) -> Any:
    return firestore.collection(USERS).document(uid)


def history_ref(firestore: Any, uid: str) -> Any:
    return profile_ref(firestore, uid).collection(HISTORY).document()


def _display_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > DISPLAY_NAME_MAX \
            or _CONTROL.search(value):
        raise BadRequest(f"display_name must be 1 to {DISPLAY_NAME_MAX} printable characters",
                         code="bad_display_name")
    return value.strip()


def _email(value: Any) -> str:
    if not isinstance(value, str) or len(value) > EMAIL_MAX or not _EMAIL.match(value.strip()):
        raise BadRequest("email must be an email address", code="bad_email")
    return value.strip()


def normal_email(value: Any) -> str:
    """An email address as entered, checked (400 ``bad_email`` otherwise), trimmed."""
    return _email(value)


def load(firestore: Any, uid: str) -> dict[str, Any] | None:
    snap = profile_ref(firestore, uid).get()
    return snap.to_dict() if snap.exists else None


def require(firestore: Any, uid: str) -> dict[str, Any]:
    """The profile, or 403 ``profile_required`` (created with the 18+ attestation)."""
    doc = load(firestore, uid)
    if doc is None:
        raise Forbidden("confirm that you are 18 or older first: create your profile "
                        "(POST /profile with adult: true)",
                        code="profile_required")
    return doc


def create(firestore: Any, uid: str, token_email: str | None, body: dict[str, Any],
           policy_version: str, now: datetime) -> tuple[dict[str, Any], bool]:
    """Create the profile with the 18+ attestation (``body.adult`` must be ``true``).

    Returns ``(profile, created)``; an existing profile is returned unchanged, whatever the
    answer: it was attested when it was created, and a later ``adult: false`` never
    reaches the erasure (an adult leaves through an erasure request, which needs a recent
    sign-in). Without a profile, ``adult: false`` raises 403 ``under_18``: the caller
    (:func:`pacs.privacy.jobs.attest_age`) starts the minor erasure for the account instead.
    """
    from google.api_core.exceptions import AlreadyExists

    adult = body.get("adult")
    if not isinstance(adult, bool):
        raise BadRequest("adult must be true or false: confirm that you are 18 or older",
                         code="adult_required")
    existing = load(firestore, uid)
    if existing is not None:
        return existing, False
    if adult is not True:
        raise Forbidden("the service is for adults only", code="under_18")
    name = _display_name(body["display_name"]) if body.get("display_name") is not None else ""
    email = _email(body["email"]) if body.get("email") is not None else (token_email or "")
    doc = {"owner": uid, "display_name": name, "email": email, "adult_attested": True,
           "adult_attested_at": now, "policy_version_at_creation": policy_version,
           "created_at": now, "updated_at": now, "restricted": False}
    batch = firestore.batch()
    batch.create(profile_ref(firestore, uid), doc)
    batch.set(history_ref(firestore, uid), {"owner": uid, "kind": "profile_created", "at": now,
                                           "adult_attested": True,
                                           "policy_version": policy_version})
    try:
        batch.commit()
    except AlreadyExists:
        return load(firestore, uid) or doc, False
    return doc, True


def rectify(firestore: Any, uid: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Correct ``display_name`` and/or ``email`` (profile fields only, never DICOM content).

    Returns
    -------
    dict
        ``changes``: ``{field: {"from": old, "to": new}}`` (empty when nothing differed).
    """
    from google.cloud import firestore as gfs

    wanted: dict[str, str] = {}
    if "display_name" in body:
        wanted["display_name"] = _display_name(body["display_name"])
    if "email" in body:
        wanted["email"] = _email(body["email"])
    unknown = set(body) - {"display_name", "email"}
    if unknown or not wanted:
        raise BadRequest("send display_name and/or email (DICOM content cannot be edited; "
                         "delete the study and upload a corrected one)", code="bad_fields")
    ref = profile_ref(firestore, uid)

    @gfs.transactional
    def apply(transaction: Any) -> dict[str, Any]:
        snap = ref.get(transaction=transaction)
        if not snap.exists:
            raise Forbidden("create your profile first", code="profile_required")
        doc = snap.to_dict() or {}
        changes = {k: {"from": doc.get(k), "to": v} for k, v in wanted.items() if doc.get(k) != v}
        if changes:
            transaction.update(ref, {**{k: c["to"] for k, c in changes.items()},
                                     "updated_at": now})
            transaction.set(history_ref(firestore, uid), {"owner": uid, "kind": "rectified",
                                                         "changes": changes, "at": now})
        return changes

    return {"changes": apply(firestore.transaction())}


def set_restriction(firestore: Any, uid: str, study_key: str | None, restricted: bool,
                    kind: str, now: datetime) -> dict[str, Any]:
    """Set or lift the account's (``study_key`` None) or one owned study's restriction, and
    record the change. Idempotent: setting the current value records nothing new.

    Returns
    -------
    dict
        ``scope`` (``account`` or ``study``), ``study_id``, ``restricted``, ``changed``.
    """
    from google.cloud import firestore as gfs

    if kind not in RESTRICTION_KINDS:
        raise BadRequest("type must be restriction or objection", code="bad_type")
    if study_key is None:
        ref = profile_ref(firestore, uid)
    else:
        ref = firestore.collection("studies").document(study_key)

    @gfs.transactional
    def apply(transaction: Any) -> bool:
        snap = ref.get(transaction=transaction)
        doc = snap.to_dict() if snap.exists else None
        if doc is None or doc.get("owner") != uid:
            if study_key is None:
                raise Forbidden("create your profile first", code="profile_required")
            raise NotFound("no such study", code="not_found")
        if bool(doc.get("restricted")) == restricted:
            return False
        update = {"restricted": restricted, "restricted_kind": kind if restricted else None,
                  ("restricted_at" if restricted else "restriction_lifted_at"): now}
        transaction.update(ref, update)
        transaction.set(history_ref(firestore, uid), {
            "owner": uid, "kind": kind if restricted else f"{kind}_lifted",
            "scope": "account" if study_key is None else "study", "study_key": study_key,
            "restricted": restricted, "at": now})
        return True

    changed = apply(firestore.transaction())
    return {"scope": "account" if study_key is None else "study", "study_id": study_key,
            "restricted": restricted, "changed": changed}


def public(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the owner sees of the profile."""
    if doc is None:
        return None
    return {k: plain(v) for k, v in doc.items() if k != "owner"}


def history(firestore: Any, uid: str, limit: int = 200) -> list[dict[str, Any]]:
    from google.cloud import firestore as gfs

    query = (profile_ref(firestore, uid).collection(HISTORY)
             .order_by("at", direction=gfs.Query.DESCENDING).limit(limit))
    return [{"id": s.id, **{k: plain(v) for k, v in (s.to_dict() or {}).items() if k != "owner"}}
            for s in query.stream()]
