"""Anchors that bound what ingest can reach here: the single-process parse ceiling (zipfile
in memory + header parse) and the local cloud's own write ceiling (the same object writes
to the storage emulator and the same Firestore writes, with no parsing or routing)."""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor

from pacs import dicom_header

from bench.workloads import Workload, members

# The Firestore writes our ingest makes: per instance its document (one request each) and its
# result (committed in batches of RESULT_BATCH); per series two (series and study created).
RESULT_BATCH = 50
WRITES_DESCRIPTION = ("2 per instance (instance document; per-file result, batched by "
                      f"{RESULT_BATCH}) + 2 per series (series and study created) "
                      "+ settle writes per series")


def parse_ceiling(workload: Workload) -> float:
    """Instances per second: read the ZIP from memory, parse every header, one process."""
    data = workload.path.read_bytes()
    started = time.perf_counter()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            raw = zf.read(name)
            dicom_header.read_header(raw, len(raw), max_header_bytes=64 * 2**20,
                                     inflate_max_bytes=256 * 2**20)
    return workload.instances / (time.perf_counter() - started)


def local_cloud_ceiling(workload: Workload, clients, threads: int = 8) -> float:
    """Instances per second for the bare writes, shaped as ours: one object and one document
    each, results in batches, two documents per series."""
    bucket = clients.storage.bucket(clients.settings.instances_bucket)
    fs = clients.firestore
    blobs = members(workload)
    run = uuid.uuid4().hex
    per_series = -(-workload.instances // workload.series)

    def write(i: int) -> None:
        if i % per_series == 0:
            for k in ("series", "study"):
                fs.collection("ceiling").document(f"{run}-{i}-{k}").set({"i": i})
        bucket.blob(f"ceiling-{run}/{i}.dcm").upload_from_string(blobs[i], if_generation_match=0)
        fs.collection("ceiling").document(f"{run}-{i}").set({"i": i})
        if i % RESULT_BATCH == RESULT_BATCH - 1 or i == workload.instances - 1:
            batch = fs.batch()
            for j in range(i - i % RESULT_BATCH, i + 1):
                batch.set(fs.collection("ceiling").document(f"{run}-{j}-result"), {"j": j})
            batch.commit()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(workload.instances)))
    return workload.instances / (time.perf_counter() - started)
