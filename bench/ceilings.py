"""Anchors that bound what ingest can reach here: the single-process parse ceiling (zipfile
in memory + header parse) and the local cloud's own write ceiling (the same object writes
to the storage emulator and the same Firestore writes, with no parsing or routing)."""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor

from pacs.dicom import header as dicom_header

from bench.workloads import Workload, members

# The Firestore writes our ingest makes: per instance its document and its result (committed
# together in batches of RESULT_BATCH); per series two (series and study created).
RESULT_BATCH = 50
WRITES_DESCRIPTION = ("2 per instance (instance document and per-file result, committed "
                      f"together by {RESULT_BATCH}) + 2 per series (series and study created) "
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
    """Instances per second for the bare writes, shaped as ours: one object (with the same
    metadata) and its instance document each, results in batches, two documents per series;
    the documents are built by the same functions, so they have the same fields."""
    from datetime import UTC, datetime

    from pacs.dicom import seal
    from pacs.indexing import catalog
    from pacs.results import STORED, FileResult

    bucket = clients.storage.bucket(clients.settings.instances_bucket)
    fs = clients.firestore
    blobs = members(workload)
    fields = dicom_header.read_header(blobs[0], len(blobs[0]), max_header_bytes=64 * 2**20,
                                      inflate_max_bytes=256 * 2**20).fields
    run = uuid.uuid4().hex
    per_series = -(-workload.instances // workload.series)
    key = clients.settings.hash_key
    results: dict[int, tuple[dict, dict]] = {}

    def write(i: int) -> None:
        now = datetime.now(UTC)
        if i % per_series == 0:
            fs.collection("ceiling").document(f"{run}-{i}-series").set(
                catalog.series_document(fields, "bench", "study", now))
            fs.collection("ceiling").document(f"{run}-{i}-study").set(
                catalog.study_document(fields, "bench", now))
        name = f"ceiling-{run}/{i}.dcm"
        blob = bucket.blob(name)
        blob.metadata = {"owner": "bench", "upload_id": run, "member": str(i), "sha256": "0" * 64,
                         "series_key": "series", seal.METADATA_KEY: seal.seal(
                             key, name, catalog.sealed_fields(fields, True))}
        blob.upload_from_string(blobs[i], if_generation_match=0)
        results[i] = (FileResult(i, f"{i:05d}.dcm", STORED, size=len(blobs[i]), study_key="study",
                                 series_key="series", instance_key=str(i),
                                 sha256="0" * 64).document("bench", run, now),
                      catalog.instance_document(fields, "bench", "study", "series", blob, True,
                                                now))
        if i % RESULT_BATCH == RESULT_BATCH - 1 or i == workload.instances - 1:
            batch = fs.batch()
            for j in range(i - i % RESULT_BATCH, i + 1):
                while j not in results:  # written by another thread a moment later
                    time.sleep(0.001)
                result, document = results.pop(j)  # as ingest: result and document together
                batch.set(fs.collection("ceiling").document(f"{run}-{j}-result"), result)
                batch.set(fs.collection("ceiling").document(f"{run}-{j}"), document)
            batch.commit()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(workload.instances)))
    return workload.instances / (time.perf_counter() - started)
