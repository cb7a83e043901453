"""DICOMweb figures for W1's series, the same requests against our ``dicomweb`` function and
against Orthanc's DICOMweb plugin (``bench/orthanc.py`` runs them inside Orthanc's network
namespace): QIDO-RS latency (median and 95th percentile of ``QIDO_SAMPLES`` requests each)
and frames per second (WADO-RS ``/frames/1`` of every instance of the series, two clients,
as the ingest anchor posts with two). Every answer is checked: QIDO counts, and each frame's
bytes equal the original pixel data, so neither side is timed answering something else."""

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

import pydicom
import requests

QIDO_SAMPLES = 50
CLIENTS = 2
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


def qido(base: str, headers: dict[str, str], t: Target, samples: int = QIDO_SAMPLES) -> dict:
    """Median latency of three QIDO-RS searches over W1, each answer's size checked."""
    searches = {
        "studies_by_patient_name": ("/studies", {"PatientName": t.patient_name}, 1),
        "series_of_study": (f"/studies/{t.study}/series", {}, 1),
        "instances_of_series": (f"/studies/{t.study}/series/{t.series}/instances",
                                {"limit": "1000"}, len(t.sops)),
    }
    session = requests.Session()
    out = {}
    for name, (path, params, expected) in searches.items():
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            resp = session.get(base + path, params=params, timeout=120,
                               headers={**headers, "Accept": DICOM_JSON})
            times.append((time.perf_counter() - started) * 1000)
            if resp.status_code != 200 or len(resp.json()) != expected:
                raise RuntimeError(f"QIDO {name}: {resp.status_code}, expected {expected} "
                                   f"answers, got {resp.text[:200]}")
        out[name] = _percentiles(times)
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


def frames(base: str, headers: dict[str, str], t: Target, clients: int = CLIENTS) -> dict:
    """Every instance's frame 1 through WADO-RS by ``clients`` concurrent clients."""
    local = threading.local()  # one keep-alive session per client thread

    def one(sop: str) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        resp = local.session.get(
            f"{base}/studies/{t.study}/series/{t.series}/instances/{sop}/frames/1",
            headers={**headers, "Accept": FRAME_ACCEPT}, timeout=120)
        if resp.status_code != 200:
            raise RuntimeError(f"frame of {sop}: {resp.status_code} {resp.text[:200]}")
        data = _first_part(resp)
        if hashlib.sha256(data).hexdigest() != t.frame_sha256[sop]:
            raise RuntimeError(f"frame of {sop}: {len(data)} bytes, not the original pixels")
        return len(data)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        sizes = list(pool.map(one, t.sops))
    seconds = time.perf_counter() - started
    return {"frames": len(sizes), "clients": clients, "seconds": seconds,
            "frames_per_s": len(sizes) / seconds, "mb_per_s": sum(sizes) / 1e6 / seconds}


def measure(base: str, headers: dict[str, str], t: Target) -> dict:
    """QIDO latencies and frames per second against one DICOMweb origin."""
    return {"qido": qido(base, headers, t), "frames": frames(base, headers, t)}


def compare(cloud, user, workload, orthanc: dict | None) -> dict:
    """Ours through the ``dicomweb`` function with ``user``'s ID token (what the viewer
    sends), beside Orthanc's figures from the same run (None when Orthanc did not run)."""
    ours = measure(cloud.urls["dicomweb"], user.headers(), target(workload.path))
    return {"instances": workload.instances, "ours": ours, "orthanc": orthanc}


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(figures: dict) -> None:
    """One line per QIDO search (p50 and p95, ours, Orthanc, ours/Orthanc) and frames/s."""
    ours, orthanc = figures["ours"], figures.get("orthanc") or {}
    print(f"\nDICOMweb, W1's series ({figures['instances']} instances); ours (dicomweb "
          "function, ID token) vs Orthanc 1.10 + DICOMweb plugin 1.7, same run:")
    labels = {"studies_by_patient_name": "QIDO /studies?PatientName=<W1's>",
              "series_of_study": "QIDO /studies/{s}/series",
              "instances_of_series": "QIDO /studies/{s}/series/{s}/instances"}
    for key, label in labels.items():
        o, a = ours["qido"][key], (orthanc.get("qido") or {}).get(key) or {}
        print(f"  {label:42s} p50 ours {o['p50_ms']:7.1f} ms, Orthanc "
              f"{a.get('p50_ms', 0):7.1f} ms, ours/Orthanc {_ratio(o['p50_ms'], a.get('p50_ms'))}"
              f" (p95 {o['p95_ms']:.0f} / {a.get('p95_ms', 0):.0f} ms, {o['samples']} samples)")
    f, g = ours["frames"], orthanc.get("frames") or {}
    print(f"  frames (frame 1 of every instance, {f['clients']} clients): ours "
          f"{f['frames_per_s']:.1f}/s ({f['mb_per_s']:.1f} MB/s), Orthanc "
          f"{g.get('frames_per_s', 0):.1f}/s ({g.get('mb_per_s', 0):.1f} MB/s), ours/Orthanc "
          f"{_ratio(f['frames_per_s'], g.get('frames_per_s'))}")
