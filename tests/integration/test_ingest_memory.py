"""One archive cannot run ingest out of memory (issue 14, item 4).

On Cloud Functions ``/tmp`` is memory, and ingest spools archive members there. The test
runs the real ingest of a real archive in a process inside a memory cgroup (cgroup v1, as
root) whose temporary folder is a tmpfs (``/dev/shm``), so spooled bytes count against the
limit exactly as they do against a function's memory. The archive's members are large
enough that spooling the members the pool could hold at once (twice its workers) would need
more than the limit; with the spool budget the run stays under it and finishes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.integration.test_write_races import own_buckets, stage_upload
from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
MIB = 1024**2
MEMBERS = 8
FRAMES, SIDE = 10, 2048  # 10 frames of 2048² at 16 bits: 80 MiB of pixel data per member
# The process itself takes about 170 MiB; one member spooled at a time (the budget) adds
# 80, while the members the pool can hold at once (16) would add all 640.
LIMIT = 400 * MIB
SPOOL_BUDGET = 100 * MIB


def multiframe_member(study: str, series: str, seed: int) -> bytes:
    """A real multi-frame CT instance whose pixels deflate about 50 to 1 (a sparse
    pattern: the archive stays small, inside the ZIP ratio cap)."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros(FRAMES * SIDE * SIDE, dtype=np.uint16)
    pixels[::64] = rng.integers(0, 4096, size=pixels[::64].size, dtype=np.uint16)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.Modality = "Memory^Test", "PID-MEM", "CT"
    ds.StudyDate, ds.InstanceNumber = "20240101", seed + 1
    ds.NumberOfFrames, ds.Rows, ds.Columns = FRAMES, SIDE, SIDE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def big_archive() -> bytes:
    study, series = generate_uid(), generate_uid()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(MEMBERS):
            zf.writestr(f"{i:03d}.dcm", multiframe_member(study, series, i))
    return buf.getvalue()


@pytest.fixture
def memory_cgroup():
    """A memory cgroup limited to LIMIT, removed afterwards."""
    if os.geteuid() != 0 or not (CGROUP_ROOT / "memory.limit_in_bytes").exists():
        pytest.skip("needs root and the cgroup v1 memory controller (present on CI here)")
    group = CGROUP_ROOT / f"pacs-test-{uuid.uuid4().hex[:10]}"
    group.mkdir()
    (group / "memory.limit_in_bytes").write_text(str(LIMIT))
    yield group
    group.rmdir()


def test_a_large_archive_is_ingested_within_the_memory_of_its_function(cloud: LocalCloud,
                                                                       memory_cgroup: Path,
                                                                       tmp_path: Path):
    # Arrange: the archive staged as create_upload and the finalize event leave it
    user = cloud.create_user()
    clients = own_buckets(cloud, "uploads", "instances")
    batch = stage_upload(clients, user.uid, big_archive(), "enhanced-ct.zip")
    spool_dir = Path("/dev/shm") / f"pacs-test-{uuid.uuid4().hex[:10]}"
    spool_dir.mkdir()
    env = {**os.environ, **cloud.env, "TMPDIR": str(spool_dir),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "functions"),
           "PACS_UPLOADS_BUCKET": clients.settings.uploads_bucket,
           "PACS_INSTANCES_BUCKET": clients.settings.instances_bucket,
           "PACS_INGEST_SPOOL_BYTES": str(SPOOL_BUDGET)}
    code = ("import json, sys\n"
            "from pacs.clients import default_clients\n"
            "from pacs.ingest import pipeline\n"
            "batch = pipeline.Batch(*json.loads(sys.argv[1]))\n"
            "print(pipeline.process(default_clients(), batch))\n")
    tasks = memory_cgroup / "tasks"
    # Act: ingest in the cgroup (the child joins it before it starts Python)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code,
             json.dumps([batch.uid, batch.upload_id, batch.generation, 0])],
            env=env, capture_output=True, text=True, timeout=600,
            preexec_fn=lambda: tasks.write_text(str(os.getpid())))
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)
    peak = int((memory_cgroup / "memory.max_usage_in_bytes").read_text())
    # Assert: not killed, every member stored, and the peak (spooled bytes included) stayed
    # under the limit
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip().splitlines()[-1] == "done"
    record = clients.firestore.collection("uploads").document(batch.upload_id).get().to_dict()
    assert record["status"] == "complete" and record["counts"]["stored"] == MEMBERS, record
    print(f"peak memory of the ingest process: {peak / MIB:.0f} MiB (limit {LIMIT / MIB:.0f})")
    assert peak < LIMIT
