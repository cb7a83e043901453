"""DICOMweb figures for W1's series, the same requests against our ``dicomweb`` function and
against Orthanc 1.10's DICOMweb plugin 1.7 holding the same files: QIDO-RS latency (median
and 95th percentile of ``QIDO_SAMPLES`` requests each) and frames per second (WADO-RS
``/frames/1`` of every instance of the series, two clients, as the ingest anchor posts with
two). Every answer is checked: QIDO counts, and each frame's bytes equal the original pixel
data, so neither side is timed answering something else.

The two sides are measured interleaved, not one after the other: on a machine shared with
other work the load changes from minute to minute (a first version timed Orthanc before our
stack started and saw Orthanc's study search at 6.5 ms in one run and 51.8 ms in the next).
Each QIDO sample asks both sides in turn (alternating which goes first) and the frames are
fetched in blocks, alternating sides block by block. Orthanc runs in this network namespace
(``tests/orthanc_peer.py``: own folder, free port, loopback only, a password), since the
requests to both must come from the same client at the same moments."""

from __future__ import annotations

import hashlib
import io
import statistics
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import requests

QIDO_SAMPLES = 50
CLIENTS = 2
FRAME_BLOCKS = 10
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"'
DICOM_JSON = "application/dicom+json"


@dataclass(frozen=True)
class Target:
    """What the requests ask for: W1's study, its one series, every instance, and the
    SHA-256 of each instance's pixel data (every frame must come back as exactly that)."""

    study: str
    series: str
    patient_name: str
    sops: tuple[str, ...]
    frame_sha256: dict[str, str]


def target(workload_zip: Path) -> Target:
    """Read the workload's archive (the same files both sides stored)."""
    sops, hashes = [], {}
    study = series = name = ""
    with zipfile.ZipFile(workload_zip) as zf:
        for member in zf.namelist():
            ds = pydicom.dcmread(io.BytesIO(zf.read(member)))
            study, series, name = ds.StudyInstanceUID, ds.SeriesInstanceUID, str(ds.PatientName)
            sops.append(ds.SOPInstanceUID)
            hashes[ds.SOPInstanceUID] = hashlib.sha256(ds.PixelData).hexdigest()
    return Target(study, series, name, tuple(sops), hashes)


def _percentiles(times_ms: list[float]) -> dict[str, float]:
    times_ms = sorted(times_ms)
    return {"p50_ms": statistics.median(times_ms),
            "p95_ms": times_ms[max(0, int(len(times_ms) * 0.95) - 1)], "samples": len(times_ms)}


Side = tuple[str, dict[str, str]]  # base URL, request headers


def _searches(t: Target) -> dict[str, tuple[str, dict[str, str], int]]:
    """name -> (path, parameters, number of answers expected)."""
    return {
        "studies_by_patient_name": ("/studies", {"PatientName": t.patient_name}, 1),
        "series_of_study": (f"/studies/{t.study}/series", {}, 1),
        "instances_of_series": (f"/studies/{t.study}/series/{t.series}/instances",
                                {"limit": "1000"}, len(t.sops)),
    }


def _order(sides: dict[str, Side], i: int) -> list[str]:
    names = list(sides)
    return names if i % 2 == 0 else names[::-1]


def qido(sides: dict[str, Side], t: Target, samples: int = QIDO_SAMPLES) -> dict:
    """Per search, per side: latency percentiles; each answer's size checked."""
    sessions = {name: requests.Session() for name in sides}
    out: dict[str, dict[str, Any]] = {}
    for search, (path, params, expected) in _searches(t).items():
        times: dict[str, list[float]] = {name: [] for name in sides}
        for i in range(samples):
            for name in _order(sides, i):
                base, headers = sides[name]
                started = time.perf_counter()
                resp = sessions[name].get(base + path, params=params, timeout=120,
                                          headers={**headers, "Accept": DICOM_JSON})
                times[name].append((time.perf_counter() - started) * 1000)
                if resp.status_code != 200 or len(resp.json()) != expected:
                    raise RuntimeError(f"{name} QIDO {search}: {resp.status_code}, expected "
                                       f"{expected} answers, got {resp.text[:200]}")
        out[search] = {name: _percentiles(v) for name, v in times.items()}
    return out


def _first_part(resp: requests.Response) -> bytes:
    """The first body part of a multipart/related answer (the one frame asked for)."""
    ctype = resp.headers.get("Content-Type", "")
    boundary = next((p.split("=", 1)[1].strip().strip('"') for p in ctype.split(";")
                     if p.strip().lower().startswith("boundary=")), None)
    if not boundary:
        raise RuntimeError(f"frame answer is not multipart: {ctype!r}")
    body = resp.content
    start = body.index(b"--" + boundary.encode())
    head_end = body.index(b"\r\n\r\n", start) + 4
    end = body.index(b"\r\n--" + boundary.encode(), head_end)
    return body[head_end:end]


def frames(sides: dict[str, Side], t: Target, clients: int = CLIENTS,
           blocks: int = FRAME_BLOCKS) -> dict:
    """Every instance's frame 1 from each side by ``clients`` concurrent clients, in
    ``blocks`` blocks that alternate between the sides; per side the time of its blocks."""
    local = threading.local()  # one keep-alive session per client thread and side

    def one(name: str, sop: str) -> int:
        base, headers = sides[name]
        sessions = local.__dict__.setdefault("sessions", {})
        session = sessions.setdefault(name, requests.Session())
        resp = session.get(
            f"{base}/studies/{t.study}/series/{t.series}/instances/{sop}/frames/1",
            headers={**headers, "Accept": FRAME_ACCEPT}, timeout=120)
        if resp.status_code != 200:
            raise RuntimeError(f"{name} frame of {sop}: {resp.status_code} {resp.text[:200]}")
        data = _first_part(resp)
        if hashlib.sha256(data).hexdigest() != t.frame_sha256[sop]:
            raise RuntimeError(f"{name} frame of {sop}: {len(data)} bytes, not the original")
        return len(data)

    size = -(-len(t.sops) // blocks)
    chunks = [t.sops[i:i + size] for i in range(0, len(t.sops), size)]
    seconds = dict.fromkeys(sides, 0.0)
    sizes: dict[str, int] = dict.fromkeys(sides, 0)
    with ThreadPoolExecutor(clients) as pool:
        for i, chunk in enumerate(chunks):
            for name in _order(sides, i):
                started = time.perf_counter()
                sizes[name] += sum(pool.map(lambda sop, n=name: one(n, sop), chunk))
                seconds[name] += time.perf_counter() - started
    return {name: {"frames": len(t.sops), "clients": clients, "seconds": seconds[name],
                   "frames_per_s": len(t.sops) / seconds[name],
                   "mb_per_s": sizes[name] / 1e6 / seconds[name]} for name in sides}


def _load_orthanc(peer, workload) -> None:
    """POST the workload's files into Orthanc, two clients (as the ingest anchor)."""
    with zipfile.ZipFile(workload.path) as zf:
        blobs = [zf.read(n) for n in zf.namelist()]

    def post(blob: bytes) -> None:
        resp = peer.post("/instances", data=blob)
        if resp.status_code != 200:
            raise RuntimeError(f"Orthanc refused an instance: {resp.status_code}")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(post, blobs))


def compare(cloud, user, workload, workdir: Path) -> dict:
    """Ours through the ``dicomweb`` function with ``user``'s ID token (what the viewer
    sends) and, interleaved, Orthanc's plugin holding the same files (its REST password as
    Basic auth); ours alone when Orthanc is not installed."""
    from tests import orthanc_peer

    started = time.perf_counter()
    t = target(workload.path)
    sides: dict[str, Side] = {"ours": (cloud.urls["dicomweb"], user.headers())}
    peer = None
    if orthanc_peer.installed():
        peer = orthanc_peer.OrthancPeer(workdir, {"DicomWeb": {"Enable": True,
                                                               "Root": "/dicom-web/"}})
        peer.start()
    try:
        if peer:
            _load_orthanc(peer, workload)
            basic = requests.Request("GET", peer.url, auth=peer.auth).prepare()
            sides["orthanc"] = (f"{peer.url}/dicom-web",
                                {"Authorization": basic.headers["Authorization"]})
        figures = {"instances": workload.instances, "qido": qido(sides, t),
                   "frames": frames(sides, t)}
        return {**figures, "seconds": time.perf_counter() - started}
    finally:
        if peer:
            peer.stop()


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(figures: dict) -> None:
    """One line per QIDO search (p50 and p95 of each side, ours/Orthanc) and frames/s."""
    print(f"\nDICOMweb, W1's series ({figures['instances']} instances): ours (dicomweb "
          "function, ID token) and Orthanc 1.10 + DICOMweb plugin 1.7, interleaved:")
    labels = {"studies_by_patient_name": "QIDO /studies?PatientName=<W1's>",
              "series_of_study": "QIDO /studies/{s}/series",
              "instances_of_series": "QIDO /studies/{s}/series/{s}/instances"}
    for key, label in labels.items():
        o, a = figures["qido"][key]["ours"], figures["qido"][key].get("orthanc") or {}
        print(f"  {label:42s} p50 ours {o['p50_ms']:7.1f} ms, Orthanc "
              f"{a.get('p50_ms', 0):7.1f} ms, ours/Orthanc {_ratio(o['p50_ms'], a.get('p50_ms'))}"
              f" (p95 {o['p95_ms']:.0f} / {a.get('p95_ms', 0):.0f} ms, {o['samples']} samples)")
    f, g = figures["frames"]["ours"], figures["frames"].get("orthanc") or {}
    print(f"  frames (frame 1 of every instance, {f['clients']} clients): ours "
          f"{f['frames_per_s']:.1f}/s ({f['mb_per_s']:.1f} MB/s), Orthanc "
          f"{g.get('frames_per_s', 0):.1f}/s ({g.get('mb_per_s', 0):.1f} MB/s), ours/Orthanc "
          f"{_ratio(f['frames_per_s'], g.get('frames_per_s'))}")
    print(f"  (this part took {figures.get('seconds', 0):.0f} s, Orthanc's loading included)")
