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

# Firestore writes our ingest makes per instance: result, instance, series create, study create.
WRITES_PER_INSTANCE = 4


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
    """Instances per second for the bare writes: one object and four documents each."""
    bucket = clients.storage.bucket(clients.settings.instances_bucket)
    fs = clients.firestore
    blobs = members(workload)
    run = uuid.uuid4().hex

    def write(i: int) -> None:
        bucket.blob(f"ceiling-{run}/{i}.dcm").upload_from_string(blobs[i], if_generation_match=0)
        for k in range(WRITES_PER_INSTANCE):
            fs.collection("ceiling").document(f"{run}-{i}-{k}").set({"i": i, "k": k})

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(workload.instances)))
    return workload.instances / (time.perf_counter() - started)
