"""The Orthanc anchor: Debian's Orthanc 1.10 with its own config, SQLite and a fresh
database, in its own network namespace with only loopback (1.10 cannot bind one address),
fed by two clients POSTing to /instances; then /tools/find for the same searches.

Run inside the namespace as ``unshare --net python -m bench.orthanc WORKLOAD.zip ...``;
prints one JSON document."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import cpu

PORT = 8042


def _post(path: str, body: bytes, content_type: str = "application/dicom") -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=body, method="POST",
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.read()


def start(workdir: Path) -> subprocess.Popen:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    config = {"Name": "bench", "StorageDirectory": str(workdir / "db"),
              "IndexDirectory": str(workdir / "db"), "HttpPort": PORT,
              "DicomServerEnabled": False, "RemoteAccessAllowed": True,
              "AuthenticationEnabled": False, "Plugins": [], "StorageCompression": False,
              "HttpThreadsCount": 50}
    (workdir / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen(["/usr/sbin/Orthanc", str(workdir / "orthanc.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/system", timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("Orthanc did not start")


def ingest(zip_path: Path, pid: int) -> dict:
    """POST every member; wall time, and Orthanc's CPU seconds over the same window
    (``/proc``, :mod:`bench.cpu`; the two clients are not counted)."""
    with zipfile.ZipFile(zip_path) as zf:
        blobs = [zf.read(n) for n in zf.namelist()]
    cpu_before = cpu.tree_cpu_seconds(pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:  # two clients, as the issue asks
        list(pool.map(lambda b: _post("/instances", b), blobs))
    seconds = time.perf_counter() - started
    return {"instances": len(blobs), "seconds": seconds,
            "cpu_seconds": cpu.tree_cpu_seconds(pid) - cpu_before,
            "mb": sum(len(b) for b in blobs) / 1e6}


def find_latency(queries: list[dict], rounds: int = 20) -> dict:
    times = []
    for _ in range(rounds):
        for query in queries:
            body = json.dumps({"Level": "Study", "Query": query, "Expand": True}).encode()
            started = time.perf_counter()
            _post("/tools/find", body, "application/json")
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(len(times) * 0.95) - 1]}


def main(paths: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc = start(Path(tmp))
        try:
            results = {Path(p).stem: ingest(Path(p), proc.pid) for p in paths}
            queries = [{"PatientName": "A*"}, {"ModalitiesInStudy": "CT"},
                       {"StudyDate": "20000101-20301231"}, {"PatientName": "*", "ModalitiesInStudy": "MR"}]
            results["find"] = find_latency(queries)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
