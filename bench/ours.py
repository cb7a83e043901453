"""Our ingest, end to end through the local cloud: from the upload object finalizing to the
last instance searchable and every series preview present."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from google.cloud.firestore_v1.base_query import FieldFilter

from bench import cpu
from bench.workloads import Workload
from localcloud import procs
from tests.ingest_helpers import (
    make_instances,
    start_upload,
    upload_bytes,
    upload_record,
    wait_settled,
    zip_bytes,
)
from tests.localcloud_fixture import LocalCloud, User


def peak_rss_mib(cloud: LocalCloud) -> dict[str, float]:
    """Highest VmHWM of any process of each function's process group."""
    return {child.name.split(".", 1)[-1]: procs.group_peak_rss_bytes(child.pid) / 2**20
            for child in cloud.children}


def our_processes(cloud: LocalCloud) -> dict[str, int]:
    """The root pid of each of our processes in the stack (every function process, the
    router, the scheduler) by short name; the emulators are not ours."""
    prefix = f"{cloud.project}."
    return {child.name[len(prefix):]: child.pid for child in cloud.children
            if child.name.startswith(prefix)}


def _phase(cloud: LocalCloud, uid: str, upload_id: str, workload: Workload) -> str:
    """How far an upload got: ``storing``, ``indexing``, ``settling`` or ``done``."""
    fs = cloud.clients().firestore
    if upload_record(cloud, upload_id).get("status") not in ("complete", "partial", "failed"):
        return "storing"
    instances = fs.collection_group("instances").where(filter=FieldFilter("owner", "==", uid))
    if instances.count().get()[0][0].value < workload.instances:
        return "indexing"
    series = [s.to_dict() for s in fs.collection_group("series").where(
        filter=FieldFilter("owner", "==", uid)).stream()]
    if len(series) == workload.series and all(
            (s.get("preview") or {}).get("status") == "ready" for s in series):
        return "done"
    return "settling"


def _wait_for_quiet_router(cloud: LocalCloud, quiet: float = 1.0, timeout: float = 60) -> None:
    """Wait until the router has delivered nothing new for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        stats = requests.get(cloud.cfg.router_url(), timeout=5).json()
        now = (stats.get("delivered"), stats.get("retried"), stats.get("failed"))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)


def _put_file(session_url: str, path: Path) -> None:
    """One PUT streamed from disk (a 2 GB archive never sits in the bench's memory)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        resp = requests.put(session_url, data=f, timeout=3600,
                            headers={"Content-Range": f"bytes 0-{size - 1}/{size}"})
    resp.raise_for_status()


def warm_up(cloud: LocalCloud) -> None:
    """Run one small archive through every ingest step before any workload is measured, so
    each workload's figures are a warm process's: the first request of each function
    process (imports, clients, the first token check) would otherwise be counted in
    whichever workload came first (0.6 ms per W1 instance for ``create_upload`` alone)."""
    user = cloud.create_user()
    upload_bytes(cloud, user, zip_bytes(make_instances(3)), "warm-up.zip", "application/zip")
    wait_settled(cloud, user.uid, 3)
    _wait_for_quiet_router(cloud)


def ingest(cloud: LocalCloud, workload: Workload, timeout: float = 1800,
           user: User | None = None) -> dict:
    """Upload the workload's archive as ``user`` (a new one by default) and time it."""
    user = user or cloud.create_user()
    size = workload.path.stat().st_size
    cloud.confirm_adult(user)  # signing up (the 18+ profile) is not the upload's work
    roots = our_processes(cloud)
    cpu_before = cpu.snapshot(roots)
    resp = start_upload(cloud, user, workload.path.name, size, "application/zip",
                        confirm_adult=False)
    resp.raise_for_status()
    body = resp.json()
    _put_file(body["session_url"], workload.path)  # returns when the object is finalized
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    phases: dict[str, float] = {}
    while (phase := _phase(cloud, user.uid, body["upload_id"], workload)) != "done":
        phases.setdefault(phase, time.perf_counter() - started)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workload.name} did not finish in {timeout} s")
        time.sleep(0.25)
    seconds = time.perf_counter() - started
    _wait_for_quiet_router(cloud)  # events still in flight (duplicates, fast paths) count too
    cpu_seconds = cpu.spent(cpu_before, cpu.snapshot(roots))
    # When each phase was first seen: storing ends when the upload record is final, indexing
    # when every instance document exists, settling when every series preview is ready.
    ends = {"stored_s": phases.get("indexing", phases.get("settling", seconds)),
            "indexed_s": phases.get("settling", seconds), "settled_s": seconds}
    counts = upload_record(cloud, body["upload_id"]).get("counts", {})
    documents = _documents_written(cloud, user.uid, body["upload_id"])
    return {"seconds": seconds, "instances_per_s": workload.instances / seconds,
            "mb_per_s": workload.instance_bytes / 1e6 / seconds,
            "ms_per_instance": seconds * 1000 / workload.instances, "counts": counts,
            "documents": documents,
            "cpu_ms_per_instance": cpu.per_instance_ms(cpu_seconds, workload.instances),
            "documents_per_instance": sum(documents.values()) / workload.instances, **ends}


def _documents_written(cloud: LocalCloud, uid: str, upload_id: str) -> dict[str, int]:
    """Documents the upload left, counted in Firestore (each written at least once): the
    measured side of "Firestore writes per instance"."""
    fs = cloud.clients().firestore
    owned = FieldFilter("owner", "==", uid)

    def count(query) -> int:
        return int(query.count().get()[0][0].value)

    return {"results": count(fs.collection("uploads").document(upload_id).collection("files")),
            "instances": count(fs.collection_group("instances").where(filter=owned)),
            "series": count(fs.collection_group("series").where(filter=owned)),
            "studies": count(fs.collection("studies").where(filter=owned)),
            "upload": 1}


def big_archive(cloud: LocalCloud, out_dir: Path, gigabytes: float) -> dict:
    """Ingest one archive of about ``gigabytes`` GB (512x512 CT slices, 8 series) and report
    each function's peak RSS afterwards: the memory bound must hold whatever the size."""
    from bench.workloads import build, corpus_file

    out_dir.mkdir(parents=True, exist_ok=True)
    count = max(1, int(gigabytes * 1e9 / 526_000))
    workload = build("BIG", corpus_file("693_UNCI.dcm"), count, 8, out_dir, compresslevel=1)
    figures = ingest(cloud, workload, timeout=6 * 3600)
    workload.path.unlink()
    figures.update(archive_bytes=workload.instance_bytes, instances=count,
                   peak_rss_mib=peak_rss_mib(cloud))
    return figures
