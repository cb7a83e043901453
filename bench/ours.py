"""Our ingest, end to end through the local cloud: from the upload object finalizing to the
last instance searchable and every series preview present."""

from __future__ import annotations

import time

from google.cloud.firestore_v1.base_query import FieldFilter

from bench.workloads import Workload
from localcloud import procs
from tests.ingest_helpers import put_session, start_upload, upload_record
from tests.localcloud_fixture import LocalCloud


def peak_rss_mib(cloud: LocalCloud) -> dict[str, float]:
    """Highest VmHWM of any process of each function's process group."""
    return {child.name.split(".", 1)[-1]: procs.group_peak_rss_bytes(child.pid) / 2**20
            for child in cloud.children}


def _done(cloud: LocalCloud, uid: str, upload_id: str, workload: Workload) -> bool:
    fs = cloud.clients().firestore
    if upload_record(cloud, upload_id).get("status") not in ("complete", "partial", "failed"):
        return False
    instances = fs.collection_group("instances").where(filter=FieldFilter("owner", "==", uid))
    if instances.count().get()[0][0].value < workload.instances:
        return False
    series = [s.to_dict() for s in fs.collection_group("series").where(
        filter=FieldFilter("owner", "==", uid)).stream()]
    return len(series) == workload.series and all(
        (s.get("preview") or {}).get("status") == "ready" for s in series)


def ingest(cloud: LocalCloud, workload: Workload, timeout: float = 1800) -> dict:
    user = cloud.create_user()
    data = workload.path.read_bytes()
    resp = start_upload(cloud, user, workload.path.name, len(data), "application/zip")
    resp.raise_for_status()
    body = resp.json()
    put_session(body["session_url"], data)  # returns when the object is finalized
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while not _done(cloud, user.uid, body["upload_id"], workload):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workload.name} did not finish in {timeout} s")
        time.sleep(0.25)
    seconds = time.perf_counter() - started
    counts = upload_record(cloud, body["upload_id"]).get("counts", {})
    return {"seconds": seconds, "instances_per_s": workload.instances / seconds,
            "mb_per_s": workload.instance_bytes / 1e6 / seconds,
            "ms_per_instance": seconds * 1000 / workload.instances, "counts": counts}
