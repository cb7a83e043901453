"""The registry of every place the system writes a user's personal data or PHI.

One :class:`Location` per place: Firestore collections (found by the ``owner`` field or by
the path under ``users/{uid}``), object prefixes in the three buckets, and the Auth user.
Each location knows how to *find* the user's items (the export reads them) and how to
*delete* them (the erasure runs it). A deleter is idempotent (what is already gone counts
as done) and deletes in bounded pages, so it works for accounts of any size.

:data:`LOCATIONS` is in erasure order: the share links die first, the Auth user and the
privacy requests (which the erasure itself is tracked by) go last. :data:`KEPT` lists what
is deliberately kept after an erasure and why (see ``docs/privacy.md``); :data:`NOT_PERSONAL`
the system collections that hold nothing about anyone.

A feature that writes user data somewhere new adds a location here; the test
``tests/integration/test_privacy_erasure.py`` lists everything the emulators hold and fails
on any collection group or object prefix that is neither here nor in :data:`KEPT`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from pacs.clients import Clients, HasClients
from pacs.locations import delete_objects

BATCH = 400
# Firebase uids are 28 alphanumerics; custom uids are at most 128 characters. A uid with
# a ``/`` would turn ``{uid}/`` into another user's folder, so such uids are refused.
SAFE_UID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class Subject(HasClients):
    """Whose data: the clients and the uid (checked to be a safe path segment)."""

    clients: Clients
    uid: str

    def __post_init__(self) -> None:
        if not isinstance(self.uid, str) or not SAFE_UID.match(self.uid):
            raise ValueError("unsafe uid")


@dataclass(frozen=True)
class Location:
    """One place holding a user's data.

    Attributes
    ----------
    name : str
        Stable name (receipts, progress records and the export's file names use it).
    kind : str
        ``firestore``, ``storage`` or ``auth``.
    what : str
        What is there, for people.
    find : callable
        ``find(subject)`` yields the user's items: document snapshots, blobs, or the Auth
        user record.
    delete : callable
        ``delete(subject)`` deletes them and returns how many; idempotent; raises
        :class:`LocationFailed` (after trying every item) when some could not be deleted.
    collection_group : str, optional
        Firestore: the collection id (every collection of that id is this location's).
    bucket_role : str, optional
        Storage: ``uploads``, ``instances`` or ``derived``.
    prefix : str, optional
        Storage: the object-name prefix, with ``{uid}``.
    export : bool
        Whether the export archive includes it (not the earlier exports themselves).
    """

    name: str
    kind: str
    what: str
    find: Callable[[Subject], Iterator[Any]]
    delete: Callable[[Subject], int]
    collection_group: str | None = None
    bucket_role: str | None = None
    prefix: str | None = None
    export: bool = True

    def prefix_for(self, uid: str) -> str:
        return (self.prefix or "").format(uid=uid)


@dataclass(frozen=True)
class Kept:
    """Something deliberately kept after an erasure, holding nothing that names the user."""

    name: str
    kind: str
    what: str
    why: str
    legal_basis: str
    retention: str
    collection_group: str | None = None


# --- Firestore -------------------------------------------------------------------------------

def _owner_query(subject: Subject, collection: str, group: bool) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    fs = subject.firestore
    base = fs.collection_group(collection) if group else fs.collection(collection)
    return base.where(filter=FieldFilter("owner", "==", subject.uid))


def _delete_pages(subject: Subject, page: Callable[[], list[Any]]) -> int:
    """Delete the documents ``page()`` returns, a batch at a time, until it returns none."""
    deleted = 0
    while True:
        snaps = page()
        if not snaps:
            return deleted
        batch = subject.firestore.batch()
        for snap in snaps:
            batch.delete(snap.reference)
        batch.commit()
        deleted += len(snaps)


def owned_collection(name: str, collection: str, what: str, group: bool = False) -> Location:
    """Documents of ``collection`` (every collection of that id when ``group``) whose
    ``owner`` is the user."""

    def find(subject: Subject) -> Iterator[Any]:
        yield from _owner_query(subject, collection, group).stream()

    def delete(subject: Subject) -> int:
        query = _owner_query(subject, collection, group).select(["owner"]).limit(BATCH)
        return _delete_pages(subject, lambda: list(query.stream()))

    return Location(name, "firestore", what, find, delete, collection_group=collection)


def user_document(name: str, what: str) -> Location:
    """``users/{uid}`` itself."""

    def ref(subject: Subject) -> Any:
        return subject.firestore.collection("users").document(subject.uid)

    def find(subject: Subject) -> Iterator[Any]:
        snap = ref(subject).get()
        if snap.exists:
            yield snap

    def delete(subject: Subject) -> int:
        existed = ref(subject).get(field_paths=["owner"]).exists
        ref(subject).delete()
        return int(existed)

    return Location(name, "firestore", what, find, delete, collection_group="users")


def user_subcollection(name: str, collection: str, what: str) -> Location:
    """Every document of ``users/{uid}/{collection}``."""

    def coll(subject: Subject) -> Any:
        return subject.firestore.collection("users").document(subject.uid).collection(collection)

    def find(subject: Subject) -> Iterator[Any]:
        yield from coll(subject).stream()

    def delete(subject: Subject) -> int:
        return _delete_pages(
            subject, lambda: list(coll(subject).select(["owner"]).limit(BATCH).stream()))

    return Location(name, "firestore", what, find, delete, collection_group=collection)


# --- Storage ---------------------------------------------------------------------------------

def bucket_name(settings: Any, role: str) -> str:
    return {"uploads": settings.uploads_bucket, "instances": settings.instances_bucket,
            "derived": settings.derived_bucket}[role]


def object_prefix(name: str, role: str, template: str, what: str, export: bool = True
                  ) -> Location:
    """Every object under ``template`` (``{uid}`` filled in) in the bucket of ``role``."""
    if not template.endswith("/") or "{uid}" not in template:
        raise ValueError("a prefix must be a folder naming the uid")

    def blobs(subject: Subject, page_size: int | None = None) -> Iterator[Any]:
        return subject.clients.storage.list_blobs(
            bucket_name(subject.settings, role), prefix=template.format(uid=subject.uid),
            max_results=page_size)

    def find(subject: Subject) -> Iterator[Any]:
        yield from blobs(subject)

    def delete(subject: Subject) -> int:
        bucket = subject.clients.storage.bucket(bucket_name(subject.settings, role))
        deleted = 0
        while True:
            names = [b.name for b in blobs(subject, 1000)]
            if not names:
                return deleted
            deleted += delete_objects(bucket, names)

    return Location(name, "storage", what, find, delete, bucket_role=role, prefix=template,
                    export=export)


def object_name_cursors(name: str, collection: str, what: str) -> Location:
    """Documents of ``collection`` whose ``cursor`` is an object name of the user's (the
    retention jobs' progress, ``pacs.retention``): the deleter clears the cursor, so the job
    starts its phase again instead of resuming after the user's object."""

    def theirs(subject: Subject, snap: Any) -> bool:
        cursor = (snap.to_dict() or {}).get("cursor")
        uid = subject.uid
        return isinstance(cursor, str) and (cursor.startswith(f"{uid}/")
                                            or f"/{uid}/" in cursor)

    def find(subject: Subject) -> Iterator[Any]:
        for snap in subject.firestore.collection(collection).stream():  # a few documents
            if theirs(subject, snap):
                yield snap

    def delete(subject: Subject) -> int:
        cleared = 0
        for snap in list(find(subject)):
            snap.reference.update({"cursor": None})
            cleared += 1
        return cleared

    return Location(name, "firestore", what, find, delete, collection_group=collection,
                    export=False)


# --- Auth ------------------------------------------------------------------------------------

def auth_user(name: str, what: str) -> Location:
    """The Firebase Auth account (email, sign-in metadata, providers)."""

    def find(subject: Subject) -> Iterator[Any]:
        from firebase_admin import auth

        try:
            yield auth.get_user(subject.uid, app=subject.clients.firebase_app)
        except auth.UserNotFoundError:
            return

    def delete(subject: Subject) -> int:
        from firebase_admin import auth

        try:
            auth.delete_user(subject.uid, app=subject.clients.firebase_app)
        except auth.UserNotFoundError:
            return 0
        return 1

    return Location(name, "auth", what, find, delete)


def sign_out(subject: Subject) -> bool:
    """Disable the Auth user and revoke its sessions (the erasure's first act on the
    account: no request of the user's can add data while the erasure runs). False when
    the account is already gone."""
    from firebase_admin import auth

    app = subject.clients.firebase_app
    try:
        auth.update_user(subject.uid, disabled=True, app=app)
        auth.revoke_refresh_tokens(subject.uid, app=app)
    except auth.UserNotFoundError:
        return False
    return True


# --- The registry ----------------------------------------------------------------------------

REQUESTS = "privacy_requests"

LOCATIONS: tuple[Location, ...] = (
    owned_collection("shares", "shares", "share links of the user's studies (token hashes)"),
    # De-identified copies made for shares (pacs.links.deidentified): a copy of data the
    # export already holds, de-identified, so not exported again.
    object_prefix("share_copy_objects", "derived", "shares/{uid}/", "de-identified copies "
                  "of shared studies", export=False),
    replace(owned_collection("share_copies", "share_copies", "instances of the de-identified "
                             "copies (remapped UIDs, object names, sizes)", group=True),
            export=False),
    owned_collection("api_keys", "api_keys", "API keys (names, scopes, times, keyed hashes; "
                     "the export leaves the hashes out)"),
    owned_collection("download_links", "download_links", "single-use study ZIP download "
                     "links (study key, times; the token only as its hash)"),
    object_prefix("exports", "derived", "exports/{uid}/", "earlier export archives",
                  export=False),
    object_prefix("instance_objects", "instances", "{uid}/",
                  "canonical DICOM instances (the PHI itself)"),
    object_prefix("preview_objects", "derived", "previews/{uid}/",
                  "series preview images and WADO-RS series metadata (headers, frame index)"),
    object_prefix("upload_objects", "uploads", "{uid}/", "raw uploads as received"),
    owned_collection("instances", "instances", "instance index documents (DICOM header "
                     "fields, checksums)", group=True),
    owned_collection("series", "series", "series documents", group=True),
    owned_collection("studies", "studies", "study documents (patient name, ID, birth date, "
                     "search keys)"),
    owned_collection("upload_results", "files", "per-file upload results (file names)",
                     group=True),
    owned_collection("uploads", "uploads", "upload records (file names, sizes, status)"),
    owned_collection("upload_usage", "upload_usage", "time and id of the last batch of "
                     "uploads started (serialises the quota and rate checks)"),
    owned_collection("access", "access", "access history (IP addresses, user agents; of "
                     "share recipients only the network and browser family)"),
    # Share recipients' full IP addresses and user agents: theirs, not the owner's to export.
    replace(owned_collection("access_clients", "access_clients", "full IP address and user "
                             "agent of each share recipient's access (readable by no client)"),
            export=False),
    owned_collection("deletions", "deletions", "records of deleted studies"),
    user_subcollection("consent_ledger", "consent", "analytics consent ledger"),
    user_subcollection("profile_history", "history", "profile changes, restrictions, "
                       "attestations"),
    user_document("profile", "profile (display name, email, 18+ attestation, flags)"),
    object_name_cursors("retention_cursors", "retention_state",
                        "progress cursors of the retention jobs (an object name)"),
    auth_user("auth_user", "the sign-in account (email, sign-in times)"),
    owned_collection(REQUESTS, REQUESTS, "data-subject requests, including this erasure"),
)
"""Every location of a user's data, in erasure order."""

KEPT: tuple[Kept, ...] = (
    Kept("erasure_receipts", "firestore",
         "erasure receipt, also the marker that stops late ingest events: what was deleted, "
         "counts, times, when residual copies expire",
         "to answer the user and the supervisory authority that the erasure happened",
         "legal obligation: GDPR Art. 5(2), 12(3), 17 and 19 (accountability)",
         "erasure_receipt_retention_days (3 years) after completion",
         collection_group="erasures"),
    Kept("operator_audit", "firestore",
         "what an operator did (lookup by email, erasure started, requests listed), who and "
         "when; the account only as the keyed hash the erasure receipt uses, never uid or email",
         "to show who acted on an emailed request and why (pacs-admin)",
         "legal obligation: GDPR Art. 5(2) and 24 (accountability)",
         "erasure_receipt_retention_days (3 years)",
         collection_group="operator_audit"),
    Kept("analytics_daily", "firestore",
         "per-day counts of analytics events by event name, with no user identifier",
         "aggregates do not identify anyone; counted only while the user consented",
         "consent (GDPR Art. 6(1)(a)) at collection; anonymous afterwards",
         "indefinitely (anonymous)",
         collection_group="analytics_daily"),
)
"""What an erasure keeps on purpose (nothing in it names the user)."""

NOT_PERSONAL: tuple[Kept, ...] = (
    Kept("usage_trends", "firestore", "daily usage aggregates of the retention job",
         "published only from at least usage_min_users users; no user identifier",
         "legitimate interest, anonymous aggregates", "see docs/retention.md",
         collection_group="usage_daily"),
    Kept("retention_runs", "firestore", "run records of the scheduled jobs",
         "codes and counts only", "legitimate interest (operations)",
         "run_record_retention_days", collection_group="retention_runs"),
    Kept("retention_leases", "firestore", "one lease per scheduled job", "job names only",
         "legitimate interest (operations)", "overwritten by every run",
         collection_group="retention_leases"),
)
"""System collections that hold nothing about any user (the inventory test knows them)."""


def by_name(name: str) -> Location:
    for location in LOCATIONS:
        if location.name == name:
            return location
    raise KeyError(name)


def collection_groups() -> set[str]:
    """Firestore collection ids of the registry (personal, kept and not personal)."""
    return ({loc.collection_group for loc in LOCATIONS if loc.collection_group}
            | {k.collection_group for k in KEPT + NOT_PERSONAL if k.collection_group})


def storage_prefix_patterns(settings: Any) -> list[tuple[str, re.Pattern[str], str]]:
    """``(bucket, regex, location name)`` for every storage location: the regex matches the
    object names of any user under it."""
    out = []
    for loc in LOCATIONS:
        if loc.kind == "storage":
            head, _, tail = (loc.prefix or "").partition("{uid}")
            out.append((bucket_name(settings, loc.bucket_role or ""),
                        re.compile("^" + re.escape(head) + r"([A-Za-z0-9_-]{1,128})"
                                   + re.escape(tail)), loc.name))
    return out
