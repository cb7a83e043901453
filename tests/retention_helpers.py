"""Helpers of the retention job tests on the local cloud (``tests/integration/test_retention*.py``).

Two ways in: each job's scheduled message published through the Pub/Sub emulator exactly as
Cloud Scheduler (and ``localcloud.scheduler``) publishes it, reaching ``run_retention_job``
through the router, with records seeded old enough relative to the real clock
(:func:`run_scheduled`); and the runner called directly with an injected clock, for what
cannot be backdated (object creation times), and for runs that overlap without the lease
(:func:`run_overlapping`). Every test checks that exactly the expired things went and
nothing unexpired did, and reads the run record (:func:`assert_run_record_shape`).

Storage is shared by the whole test session (``clean_firestore`` clears Firestore only), so
direct runs keep to their own objects with ``scope="{uid}/"``, and runs on the real clock
leave other tests' objects alone because those are younger than every grace period.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud.firestore_v1.base_query import FieldFilter
from pacs import ids
from pacs.retention import runner

from localcloud import config, scheduler
from tests.localcloud_fixture import LocalCloud, wait_for

RUN_TIMEOUT = 240


# --- Running jobs ----------------------------------------------------------------------------

def pubsub_publisher():
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


def schedule_entry(job: str) -> dict[str, Any]:
    """The job's entry in the one schedule definition."""
    return next(j for j in config.schedule_definition()["jobs"] if j["data"]["job"] == job)


def runs_of_message(cloud: LocalCloud, message_id: str) -> list[dict[str, Any]]:
    query = cloud.clients().firestore.collection(runner.RUNS).where(
        filter=FieldFilter("message_id", "==", message_id))
    return [{"id": s.id, **(s.to_dict() or {})} for s in query.stream()]


def wait_run(cloud: LocalCloud, message_id: str) -> dict[str, Any]:
    """The finished run record of one message."""
    return wait_for(lambda: (r := runs_of_message(cloud, message_id))
                    and r[0]["status"] != runner.RUNNING and r[0],
                    timeout=RUN_TIMEOUT, interval=0.5, what=f"run record of {message_id}")


def publish(cloud: LocalCloud, job: str) -> str:
    """Publish a job's scheduled message, as Cloud Scheduler does; return its message id."""
    return scheduler.publish(pubsub_publisher(), cloud.project, schedule_entry(job))


def run_scheduled(cloud: LocalCloud, job: str, attempts: int = 6) -> dict[str, Any]:
    """Publish the job's message and wait for its run. A run skipped because an earlier run
    of the job (another test's) still held the lease is published again, as the next cron
    tick would be."""
    for _ in range(attempts):
        record = wait_run(cloud, publish(cloud, job))
        if record["status"] != runner.SKIPPED:
            return record
        time.sleep(3)
    raise AssertionError(f"{job} kept being skipped")


def run_overlapping(cloud: LocalCloud, job: str, runs: int = 3, **options: Any
                    ) -> list[dict[str, Any]]:
    """``runs`` direct runs of ``job`` at the same time, without the lease (so they really
    overlap); ``options`` go to :func:`pacs.retention.runner.run`. Returns their records."""
    results: list[dict[str, Any]] = []

    def one():
        results.append(runner.run(cloud.clients(), job, lease=False, **options))

    threads = [threading.Thread(target=one) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RUN_TIMEOUT)
    return results


def assert_run_record_shape(record: dict[str, Any], job: str) -> None:
    assert record["job"] == job
    assert set(record) >= {"job", "status", "started_at", "finished_at", "duration_seconds",
                           "counts", "errors", "more", "message_id"}
    assert record["finished_at"] >= record["started_at"]
    assert all(isinstance(v, int) for v in record["counts"].values())
    assert all(isinstance(e, str) and ":" in e or e == "lease_held" for e in record["errors"])


# --- Clock, documents and objects ------------------------------------------------------------

def now() -> datetime:
    return datetime.now(UTC)


def new_uid() -> str:
    return f"ret{uuid.uuid4().hex[:20]}"


def doc(cloud: LocalCloud, path: str) -> dict[str, Any] | None:
    snap = cloud.clients().firestore.document(path).get()
    return snap.to_dict() if snap.exists else None


def exists(cloud: LocalCloud, role: str, name: str) -> bool:
    return cloud.clients().storage.bucket(cloud.buckets[role]).get_blob(name) is not None


def put(cloud: LocalCloud, role: str, name: str, data: bytes = b"x",
        metadata: dict[str, str] | None = None) -> Any:
    blob = cloud.clients().storage.bucket(cloud.buckets[role]).blob(name)
    if metadata:
        blob.metadata = metadata
    blob.upload_from_string(data)
    return blob


# --- Seeded records --------------------------------------------------------------------------

def seed_share(cloud: LocalCloud, uid: str, expires_at: datetime, revoked: bool = False) -> str:
    share_id = secrets.token_hex(10)
    cloud.clients().firestore.collection("shares").document(share_id).set({
        "owner": uid, "study_key": secrets.token_hex(16), "token_hash": secrets.token_hex(32),
        "created_at": expires_at - timedelta(days=1), "expires_at": expires_at,
        "max_views": None, "views": 3, "revoked": revoked,
        "revoked_at": expires_at - timedelta(hours=1) if revoked else None,
        "last_used_at": None})
    return share_id


def seed_upload(cloud: LocalCloud, uid: str, status: str, created: datetime, **fields) -> str:
    upload_id = uuid.uuid4().hex
    cloud.clients().firestore.collection("uploads").document(upload_id).set({
        "owner": uid, "filename": "scan.zip", "size": 1, "content_type": "application/zip",
        "status": status, "created_at": created, "updated_at": fields.pop("updated_at", created),
        "object": ids.upload_object(uid, upload_id), "counts_toward_quota": True, **fields})
    return upload_id


def seed_result(cloud: LocalCloud, uid: str, upload_id: str, index: int, status: str,
                **fields) -> None:
    (cloud.clients().firestore.collection("uploads").document(upload_id).collection("files")
     .document(f"{index:06d}").set({"owner": uid, "upload_id": upload_id, "index": index,
                                    "status": status, "recorded_at": now(), **fields}))
