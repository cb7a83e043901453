"""Least-privilege identities: one runtime service account per function, with exactly the
roles its code path needs, each with the reason (rendered into docs/deploy.md).

Scopes are as narrow as IAM allows: bucket roles on one bucket, publisher on one topic,
the secret accessor on one secret, token creator on the account itself. Firestore and
Firebase Auth roles exist only per project, so a function holding them could technically
read any user's documents; that every user sees only their own data is enforced by the
code path (uid from a verified ID token, keyed ids, ``{uid}/`` object prefixes), and no
other principal of the project holds those roles except the operators.
"""

from __future__ import annotations

from dataclasses import dataclass

SA_PREFIX = "pacs-"
EVENTS_SA_ID = "pacs-events"  # identity Eventarc uses to invoke the event functions
BUILD_SA_ID = "pacs-build"  # identity Cloud Build uses to build the function images
HASH_KEY_SECRET = "pacs-hash-key"


@dataclass(frozen=True)
class Grant:
    """One role on one resource.

    Attributes
    ----------
    role : str
        ``roles/...``.
    scope : str
        ``project``, ``bucket`` (target: bucket role uploads|instances|derived), ``topic``
        (target: topic name), ``secret`` (target: secret name) or ``self`` (the account
        itself).
    target : str
    why : str
    """

    role: str
    scope: str
    target: str = ""
    why: str = ""


def _firestore(why: str) -> Grant:
    return Grant("roles/datastore.user", "project", "", why)


def _bucket(role: str, bucket: str, why: str) -> Grant:
    return Grant(role, "bucket", bucket, why)


def _publisher(topic: str, why: str) -> Grant:
    return Grant("roles/pubsub.publisher", "topic", topic, why)


HASH_KEY = Grant("roles/secretmanager.secretAccessor", "secret", HASH_KEY_SECRET,
                 "reads PACS_HASH_KEY (pinned version), the key of every keyed id and hash")
AUTH_VIEWER = Grant("roles/firebaseauth.viewer", "project", "",
                    "verify_id_token(check_revoked=True) looks the caller's account up")
OBJECT_VIEWER = "roles/storage.objectViewer"
OBJECT_CREATOR = "roles/storage.objectCreator"
OBJECT_USER = "roles/storage.objectUser"

_INGEST = [
    _firestore("upload records, per-file results, checkpoints, the study/series index"),
    _bucket(OBJECT_USER, "uploads", "reads the uploaded object; deletes refused uploads"),
    _bucket(OBJECT_CREATOR, "instances", "create-only writes of canonical instances"),
    _bucket(OBJECT_VIEWER, "instances",
            "recognises its own earlier copy after a duplicate or crashed delivery"),
    _publisher("ingest-batches", "checkpoint: continues a large archive in a new invocation"),
    _publisher("series-settle", "asks for each stored series to be settled"),
    HASH_KEY,
]

GRANTS: dict[str, list[Grant]] = {
    "create-upload": [
        _firestore("upload records and the per-user quota and rate counters"),
        _bucket(OBJECT_CREATOR, "uploads",
                "opens a resumable session for exactly one new object; cannot read or delete"),
        AUTH_VIEWER,
        HASH_KEY,
    ],
    "on-upload-finalized": list(_INGEST),
    "continue-upload": list(_INGEST),
    "on-instance-finalized": [
        _firestore("writes the instance, series and study index documents"),
        _bucket(OBJECT_USER, "instances",
                "reads the stored header; deletes an object that fails the checks"),
        HASH_KEY,
    ],
    "settle-series": [
        _firestore("recomputes series and study counts"),
        _bucket(OBJECT_VIEWER, "instances", "reads the middle instance of a series and the "
                "headers of new instances (WADO-RS series metadata)"),
        _bucket(OBJECT_USER, "derived", "writes the series preview (a rebuild overwrites it) "
                "and the series metadata build, deleting the previous one"),
        HASH_KEY,
    ],
    "studies": [
        _firestore("search and read of the caller's studies; study deletion"),
        _bucket(OBJECT_USER, "uploads", "deleting a study deletes its finished upload objects"),
        _bucket(OBJECT_USER, "instances", "deleting a study deletes its instances"),
        _bucket(OBJECT_USER, "derived", "deleting a study deletes its previews"),
        AUTH_VIEWER,
        HASH_KEY,
    ],
    "sign-link": [
        _firestore("reads the study index; shares; access records"),
        _bucket(OBJECT_VIEWER, "instances",
                "a signed URL carries the signer's authority: these two buckets only"),
        _bucket(OBJECT_VIEWER, "derived", "previews behind signed URLs"),
        Grant("roles/iam.serviceAccountTokenCreator", "self", "",
              "signBlob as itself: V4 signed URLs without a key file"),
        AUTH_VIEWER,
        HASH_KEY,
    ],
    "privacy-requests": [
        _firestore("records data-subject requests and their status"),
        _publisher("privacy-jobs", "queues the export or erasure job"),
        AUTH_VIEWER,
        HASH_KEY,
    ],
    "run-privacy-job": [
        _firestore("reads everything of one user for export; erases it"),
        _bucket(OBJECT_USER, "uploads", "erasure deletes the user's pending uploads"),
        _bucket(OBJECT_USER, "instances", "erasure deletes the user's instances; export reads them"),
        _bucket(OBJECT_USER, "derived", "erasure deletes previews; writes the export archive"),
        Grant("roles/firebaseauth.admin", "project", "", "erasure deletes the account itself"),
        Grant("roles/iam.serviceAccountTokenCreator", "self", "",
              "signs the export's time-limited download link"),
        HASH_KEY,
    ],
    "run-retention-job": [
        _firestore("expires links, purges access records, reconciles, usage trends"),
        _bucket(OBJECT_USER, "uploads", "clean_uploads deletes abandoned uploads"),
        _bucket(OBJECT_USER, "instances", "reconcile deletes instances without an index entry"),
        _bucket(OBJECT_USER, "derived", "reconcile and purge_logs delete orphaned previews "
                "and expired exports; backfill_series_metadata writes series metadata"),
        _publisher("privacy-jobs", "resume_erasures re-queues stalled erasures and exports"),
        _publisher("series-settle", "reconcile asks for touched series to be recounted"),
        _publisher("retention-jobs", "a job out of time budget continues in a new message"),
        HASH_KEY,
    ],
    "dicomweb": [
        _firestore("QIDO-RS and WADO-RS read the caller's documents; STOW-RS writes the upload "
                   "record, per-part results and the study and series documents"),
        _bucket(OBJECT_USER, "instances", "WADO-RS streams the caller's stored instances; "
                "STOW-RS writes them create-only and reads an existing one's metadata "
                "(duplicate or conflict)"),
        _publisher("series-settle", "STOW-RS asks for the series it stored into to settle"),
        _bucket(OBJECT_VIEWER, "derived", "WADO-RS reads series metadata, frame indexes and "
                "previews (thumbnails)"),
        AUTH_VIEWER,
        HASH_KEY,
    ],
}

EVENTS_GRANTS = [
    Grant("roles/eventarc.eventReceiver", "project", "",
          "receives events as the identity of the Eventarc triggers"),
    Grant("roles/run.invoker", "function", "",
          "invokes the event functions, each granted on that function only (not the HTTP ones)"),
]
BUILD_GRANTS = [
    Grant("roles/cloudbuild.builds.builder", "project", "",
          "builds the function images instead of the default compute account"),
]


def service_account_id(function_name: str) -> str:
    """``pacs-<function name>``: 6 to 30 characters, as IAM requires."""
    sa_id = f"{SA_PREFIX}{function_name}"
    if not 6 <= len(sa_id) <= 30:
        raise ValueError(f"service account id {sa_id!r} must be 6-30 characters")
    return sa_id


def email(sa_id: str, project: str) -> str:
    return f"{sa_id}@{project}.iam.gserviceaccount.com"


def markdown_table(function_names: list[str]) -> str:
    """The roles table of docs/deploy.md (kept in sync by a test)."""
    rows = ["| service account | role | on | why |", "|---|---|---|---|"]

    def on(grant: Grant) -> str:
        if grant.scope == "bucket":
            return f"bucket `<project>-{grant.target}`"
        if grant.scope in ("topic", "secret"):
            return f"{grant.scope} `{grant.target}`"
        if grant.scope == "self":
            return "itself"
        if grant.scope == "function":
            return "each event function"
        return "project"

    for name in function_names:
        for grant in GRANTS[name]:
            rows.append(f"| `{service_account_id(name)}` | `{grant.role}` | {on(grant)} | "
                        f"{grant.why} |")
    for sa_id, grants in ((EVENTS_SA_ID, EVENTS_GRANTS), (BUILD_SA_ID, BUILD_GRANTS)):
        for grant in grants:
            rows.append(f"| `{sa_id}` | `{grant.role}` | {on(grant)} | {grant.why} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m deploy.iam: the table for docs/deploy.md
    import json
    from pathlib import Path

    table = json.loads((Path(__file__).resolve().parent.parent / "infra" / "functions.json")
                       .read_text())["functions"]
    print(markdown_table([fn["name"] for fn in table]), end="")
