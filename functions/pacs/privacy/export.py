"""Access and portability: one ZIP archive with everything the system holds about a user.

The archive is written by the ``privacy-jobs`` job straight into the derived bucket
(``exports/{uid}/{request_id}.zip``) through a streaming upload: ``zipfile`` writes to an
unseekable sink (data descriptors after each member, ZIP64 throughout), each DICOM object is
copied a chunk at a time, each Firestore location is written a document per line. Nothing
is held whole in memory, whatever the size of the account.

What goes in is decided by the same registry the erasure uses
(:data:`pacs.privacy.personal_data.LOCATIONS`): every Firestore document about the user, the
original DICOM files, the raw uploads, the previews, the Auth account record, plus a
README, ``checksums.sha256`` and ``manifest.json``. Every location is found by the user's
uid (owner-filtered queries, ``{uid}/`` prefixes), and each document's owner is checked
again before it is written, so nothing of another user's can appear.

Integrity: while a DICOM object is copied its SHA-256 is computed and compared with the
checksum ingest recorded on its instance document; mismatches, objects without a record
and records without an object are reported in ``manifest.json`` and in the request.

No link is stored. The request's result names the archive (object, generation, size,
SHA-256) and until when it is kept (``available_until``: ``Settings.export_link_seconds``
after it was written; the retention job purges it then). A download link is minted on
demand by ``POST /requests/{id}/download`` (:func:`issue_download`), for a sign-in of the
last ``recent_signin_seconds`` only, and lives no longer than that window (nor than
``link_ttl_seconds``, nor than the archive): a V4 signed URL of the one object, its
generation pinned. Whoever holds a stale token, or reads the owner's documents through the
Firestore rules, finds no way to the archive.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pacs import log_events
from pacs.auth import Caller
from pacs.clients import Clients
from pacs.errors import Forbidden, NotFound, PacsError
from pacs.json_values import plain
from pacs.links import signing
from pacs.locations import delete_objects
from pacs.privacy import requests as privacy_requests
from pacs.privacy.personal_data import Location, Subject

FORMAT_VERSION = 1
CHUNK = 4 * 1024**2
UPLOAD_CHUNK = 8 * 1024**2  # a multiple of 256 KiB, as resumable uploads require
RESULT_LIST_MAX = 100  # integrity findings listed in the request (all are in the manifest)
# Folders of the archive for the object locations.
FOLDERS = {"instance_objects": "dicom", "preview_objects": "previews",
           "upload_objects": "uploads"}
# Fields left out of the exported documents: security material, not data about the user.
REDACTED = {"shares": ("token_hash", "copy_secret"), "api_keys": ("key_hash",)}

README = """Radiology PACS - export of your data
=====================================

This archive holds everything the service stores about your account, as of the time in
manifest.json ("generated_at"). It was produced for your access / data portability request.

  README.txt          this file
  manifest.json       request id, your account id, when, how many items per location, and
                      the integrity check of the DICOM files (see below)
  checksums.sha256    SHA-256 of every file in dicom/, uploads/ and previews/, in the format
                      of `sha256sum -c checksums.sha256`
  account/auth.json   your sign-in account: email, when created, last sign-in, providers
  firestore/*.jsonl   every database document about you, one JSON object per line:
                      {"path": "<collection>/<id>/...", "data": {...}}
                      times are ISO 8601 in UTC; binary values are base64
      profile.jsonl          your profile (display name, email, 18+ attestation, flags)
      profile_history.jsonl  changes to your profile, restrictions, attestations
      consent_ledger.jsonl   every analytics consent decision, with the policy version
      uploads.jsonl          your uploads (file name, size, status, counts)
      upload_results.jsonl   the result of every file of every upload
      studies.jsonl, series.jsonl, instances.jsonl
                             the index of your studies: the DICOM header fields we extracted
                             and, per instance, the SHA-256 recorded when it was stored
      shares.jsonl           your share links (the secret token is never stored, so it is not
                             here; its hash is left out as security data)
      access.jsonl           the access history of your studies (who, when, IP, user agent)
      deletions.jsonl        studies you deleted
      privacy_requests.jsonl your data-subject requests, this one included
  dicom/<study>/<instance>.dcm
                      your DICOM files as stored: byte for byte what you uploaded, except
                      that the 128-byte preamble is zeroed (it can carry executable code)
  uploads/<upload id> your uploads as received (a DICOM file or a ZIP archive)
  previews/<study>/<series>.png|jpg
                      the preview images we generated

Folder and file names are keyed hashes, not DICOM UIDs: the UIDs are inside the files and in
firestore/instances.jsonl (SOPInstanceUID, field "object" gives the stored name).

Each download link of this archive lives a few minutes and is given only to a recent sign-in;
the archive itself is deleted from our storage at the time shown with your request.
"""


class ExportNotReady(PacsError):
    """The export has not completed (yet, or at all): there is nothing to download."""

    code = "export_not_ready"
    http_status = 409


class ExportExpired(PacsError):
    """The archive's time is over (it is purged, or about to be): request a new export."""

    code = "export_expired"
    http_status = 410


def archive_object(uid: str, request_id: str) -> str:
    return f"exports/{uid}/{request_id}.zip"


def info(name: str, stamp: tuple[int, ...], compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    return info


def _auth_record(user: Any) -> dict[str, Any]:
    meta = user.user_metadata

    def when(ms: int | None) -> str | None:
        from datetime import UTC

        return plain(datetime.fromtimestamp(ms / 1000, UTC)) if ms else None

    return {"uid": user.uid, "email": user.email, "email_verified": user.email_verified,
            "display_name": user.display_name, "phone_number": user.phone_number,
            "disabled": user.disabled,
            "created_at": when(meta.creation_timestamp if meta else None),
            "last_sign_in_at": when(meta.last_sign_in_timestamp if meta else None),
            "providers": [p.provider_id for p in user.provider_data]}


def _is_theirs(subject: Subject, location: Location, snap: Any) -> bool:
    """Defence in depth: a document goes in only when it is the user's."""
    path = snap.reference.path
    if path == f"users/{subject.uid}" or path.startswith(f"users/{subject.uid}/"):
        return True
    return (snap.to_dict() or {}).get("owner") == subject.uid


def _recorded_checksums(subject: Subject, study_key: str) -> dict[str, str | None]:
    """``{object name: sha256}`` of one study's instance documents (series documents that
    are missing still have their instances listed)."""
    out: dict[str, str | None] = {}
    study = subject.firestore.collection("studies").document(study_key)
    for series in study.collection("series").list_documents():
        for snap in series.collection("instances").select(["object", "sha256", "owner"]).stream():
            doc = snap.to_dict() or {}
            if doc.get("owner") == subject.uid and doc.get("object"):
                out[doc["object"]] = doc.get("sha256")
    return out


class Integrity:
    """Compares the SHA-256 of each DICOM object copied with the one recorded at ingest."""

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self.study: str | None = None
        self.expected: dict[str, str | None] = {}
        self.checked = self.matched = 0
        self.mismatched: list[str] = []
        self.unrecorded: list[str] = []
        self.missing: list[str] = []

    def _switch(self, study: str | None) -> None:
        if study == self.study:
            return
        self.missing.extend(sorted(self.expected))  # recorded but never seen
        self.study = study
        self.expected = _recorded_checksums(self.subject, study) if study else {}

    def check(self, object_name: str, sha256: str, archive_name: str) -> None:
        parts = object_name.split("/")
        self._switch(parts[1] if len(parts) == 3 else None)
        self.checked += 1
        if object_name not in self.expected:
            self.unrecorded.append(archive_name)
            return
        recorded = self.expected.pop(object_name)
        if recorded == sha256:
            self.matched += 1
        else:
            self.mismatched.append(archive_name)

    def to_state(self) -> dict[str, Any]:
        """What a later run needs to go on (JSON)."""
        return {"study": self.study, "expected": self.expected, "checked": self.checked,
                "matched": self.matched, "mismatched": self.mismatched,
                "unrecorded": self.unrecorded, "missing": self.missing}

    @classmethod
    def from_state(cls, subject: Subject, state: dict[str, Any] | None) -> Integrity:
        made = cls(subject)
        for key, value in (state or {}).items():
            setattr(made, key, value)
        return made

    def finish(self) -> dict[str, Any]:
        self._switch(None)
        return {"checked": self.checked, "matched": self.matched,
                "mismatched": self.mismatched, "unrecorded": self.unrecorded,
                "missing": self.missing}


def _copy_object(zf: zipfile.ZipFile, blob: Any, name: str, stamp: tuple[int, ...]) -> str:
    digest = hashlib.sha256()
    with blob.open("rb", chunk_size=CHUNK) as reader, \
            zf.open(info(name, stamp, zipfile.ZIP_STORED), "w", force_zip64=True) as out:
        while True:
            chunk = reader.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _archive_name(location: Location, subject: Subject, object_name: str) -> str | None:
    rest = object_name[len(location.prefix_for(subject.uid)):]
    parts = [p for p in rest.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return None
    return "/".join([FOLDERS.get(location.name, location.name), *parts])


def write_location(zf: zipfile.ZipFile, subject: Subject, location: Location,
                   stamp: tuple[int, ...], state: dict[str, Any], checksums: list[str],
                   integrity: Integrity, out_of_time: Callable[[], bool]) -> bool:
    """Write one location's items into the archive (see :mod:`pacs.privacy.export_runs`).

    Firestore locations and the Auth record go in whole; object locations go object by
    object after ``state["after"]`` (the last object name written), stopping when
    ``out_of_time()`` (after at least one object). ``state`` keeps the counts. Returns True
    when the location is done.
    """
    counts = state["counts"]
    count = counts.get(location.name, 0)
    if location.kind == "auth":
        for user in location.find(subject):
            zf.writestr(info("account/auth.json", stamp, zipfile.ZIP_DEFLATED),
                        json.dumps(_auth_record(user), indent=2))
            count += 1
    elif location.kind == "firestore":
        redacted = REDACTED.get(location.name, ())
        member = info(f"firestore/{location.name}.jsonl", stamp, zipfile.ZIP_DEFLATED)
        with zf.open(member, "w", force_zip64=True) as out:
            for snap in location.find(subject):
                if not _is_theirs(subject, location, snap):
                    continue
                data = {k: v for k, v in (snap.to_dict() or {}).items() if k not in redacted}
                line = {"path": snap.reference.path, "data": plain(data)}
                out.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
                count += 1
        state["documents"] += count - counts.get(location.name, 0)
    else:
        after, wrote = state.get("after"), 0
        for blob in location.find(subject):
            if after is not None and blob.name <= after:
                continue  # written by an earlier run
            if wrote and out_of_time():
                counts[location.name] = count
                return False
            name = _archive_name(location, subject, blob.name)
            state["after"] = blob.name
            if name is None:
                continue
            sha = _copy_object(zf, blob, name, stamp)
            checksums.append(f"{sha}  {name}\n")
            if location.name == "instance_objects":
                integrity.check(blob.name, sha, name)
            count += 1
            wrote += 1
            state["files"] += 1
    counts[location.name] = count
    return True


def available_until(result: dict[str, Any]) -> datetime | None:
    """Until when the archive of a result is kept (``expires_at`` in results stored before
    issue 14, when it was the stored link's expiry: the same moment)."""
    until = result.get("available_until") or result.get("expires_at")
    return until if isinstance(until, datetime) else None


def download_link_seconds(settings: Any, now: datetime, until: datetime) -> int:
    """Lifetime of a download link minted at ``now``: no longer than a sign-in counts as
    recent (``recent_signin_seconds``), than any signed link (``link_ttl_seconds``), or
    than the archive is kept (``until``). At least one second."""
    left = int((until - now).total_seconds())
    return max(1, min(settings.recent_signin_seconds, settings.link_ttl_seconds,
                      signing.V4_MAX_SECONDS, left))


def _forget_stored_link(firestore: Any, request_id: str) -> None:
    from google.cloud import firestore as gfs

    privacy_requests.request_ref(firestore, request_id).update(
        {"result.download_url": gfs.DELETE_FIELD})


def forget_stored_links(firestore: Any, limit: int = 400) -> int:
    """Remove up to ``limit`` download links stored in export results by versions before
    issue 14 (readable with any valid token, through the API and the Firestore rules).
    Run by :func:`pacs.privacy.jobs.resume_stalled` on its schedule; returns how many."""
    from google.cloud import firestore as gfs
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (firestore.collection(privacy_requests.COLLECTION)
             .where(filter=FieldFilter("result.download_url", ">", "")).limit(limit))
    snaps = list(query.stream())
    if snaps:
        batch = firestore.batch()
        for snap in snaps:
            batch.update(snap.reference, {"result.download_url": gfs.DELETE_FIELD})
        batch.commit()
        log_events.emit("INFO", "export_links_forgotten", "stored export links removed",
                        count=len(snaps))
    return len(snaps)


def issue_download(clients: Clients, caller: Caller, request_id: Any, signer: Any,
                   now: datetime) -> dict[str, Any]:
    """``POST /requests/{id}/download``: a short-lived link to a completed export's archive,
    for its owner on a recent sign-in. Nothing is stored.

    Raises 404 (not the caller's export), 409 ``export_not_ready``, 410 ``export_expired``
    (past ``available_until``, or the archive is gone), 403 ``recent_sign_in_required``,
    403 ``erasure_in_progress``.
    """
    from pacs.privacy import erasure

    fs, settings = clients.firestore, clients.settings
    uid = caller.uid
    if erasure.pending(fs, settings, uid):
        raise Forbidden("your account is being erased", code="erasure_in_progress")
    doc = privacy_requests.owned_request(fs, uid, request_id)
    if doc.get("type") != "export":
        raise NotFound("no such export", code="not_found")
    result = doc.get("result") or {}
    if doc.get("status") != privacy_requests.COMPLETED or not result.get("object"):
        raise ExportNotReady(f"the export is {doc.get('status')}: nothing to download yet")
    if "download_url" in result:  # stored by an older version: forget it now
        _forget_stored_link(fs, request_id)
    until = available_until(result)
    if until is None or until <= now:
        raise ExportExpired("this export is no longer kept: request a new one")
    privacy_requests.require_recent_sign_in(caller, settings, now, "downloading your export")
    name, generation = result["object"], str(result.get("generation") or "")
    stored = clients.storage.bucket(settings.derived_bucket).get_blob(name)
    if stored is None or str(stored.generation) != generation:
        raise ExportExpired("this export is no longer kept: request a new one")
    ttl = download_link_seconds(settings, now, until)
    issued = privacy_requests.utc_now()
    url = signing.sign_get_url(clients.storage, signer,
                               signing.ObjectRef(settings.derived_bucket, name, generation),
                               ttl, settings.signed_url_endpoint)
    log_events.emit("INFO", "export_link_issued", "export download link issued", uid=uid,
                    request=request_id, ttl=ttl)
    return {"request_id": request_id, "download_url": url,
            "expires_at": plain(signing.expiry_of_batch(issued, ttl)),
            "size": result.get("size"), "sha256": result.get("sha256"),
            "available_until": plain(until)}


def purge_expired(clients: Clients, now: datetime) -> int:
    """Delete export archives past their ``available_until`` (the retention job's
    ``purge_logs`` does the same with a margin)."""
    settings = clients.settings
    cutoff = now - timedelta(seconds=settings.export_link_seconds)
    bucket = clients.storage.bucket(settings.derived_bucket)
    old = [b.name for b in clients.storage.list_blobs(settings.derived_bucket, prefix="exports/")
           if b.time_created is not None and b.time_created <= cutoff]
    return delete_objects(bucket, old)

