"""``python -m bench``: prints a table with ratios and writes bench-results/latest.json."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import ceilings, dicomweb_bench, ours, workloads
from tests.localcloud_fixture import start_test_cloud, stop_test_cloud

ROOT = Path(__file__).resolve().parent.parent


def run_orthanc(paths: list[Path]) -> dict:
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m", "bench.orthanc",
                           *map(str, paths)], capture_output=True, text=True, timeout=3600,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--workloads", default="W1,W2",
                        help="comma-separated workload names (default: W1,W2)")
    parser.add_argument("--no-orthanc", action="store_true", help="skip the Orthanc anchor")
    parser.add_argument("--no-search", action="store_true", help="skip the 10,000-study search")
    parser.add_argument("--no-dicomweb", action="store_true",
                        help="skip W1's DICOMweb figures (QIDO p50, frames/s; bench/dicomweb_bench.py)")
    parser.add_argument("--no-viewer", action="store_true",
                        help="skip the viewer's click-to-first-image figures (bench/viewer_bench.py)")
    parser.add_argument("--big-archive-gb", type=float, default=0.0,
                        help="also ingest an archive of about this many GB and report peak RSS")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="pacs-bench-"))
    wanted = {n.strip() for n in args.workloads.split(",") if n.strip()}
    built = [w for w in workloads.build_all(tmp / "workloads", wanted)]
    print("workloads: " + ", ".join(f"{w.name} {w.instances} instances, "
                                    f"{w.path.stat().st_size / 1e6:.0f} MB zip" for w in built))
    orthanc = {} if args.no_orthanc else run_orthanc([w.path for w in built])
    cloud = start_test_cloud(tmp / "cloud")
    results: dict = {"when": datetime.now(UTC).isoformat(), "workloads": {}}
    try:
        owners = {w.name: cloud.create_user() for w in built}
        ours.warm_up(cloud)
        for w in built:
            figures = ours.ingest(cloud, w, user=owners[w.name])
            figures["parse_ceiling_per_s"] = ceilings.parse_ceiling(w)
            figures["cloud_ceiling_per_s"] = ceilings.local_cloud_ceiling(w, cloud.clients())
            o = orthanc.get(w.name)
            figures["orthanc_per_s"] = o["instances"] / o["seconds"] if o else None
            figures["orthanc_cpu_ms_per_instance"] = (o["cpu_seconds"] * 1000 / o["instances"]
                                                      if o else None)
            results["workloads"][w.name] = figures
        w1 = next((w for w in built if w.name == "W1"), None)
        if w1 and not args.no_dicomweb:
            results["dicomweb"] = dicomweb_bench.compare(cloud, owners["W1"], w1,
                                                         tmp / "orthanc-dicomweb")
        results["peak_rss_mib"] = ours.peak_rss_mib(cloud)
        if args.big_archive_gb:
            results["big_archive"] = ours.big_archive(cloud, tmp / "big", args.big_archive_gb)
        if not args.no_search:
            from bench import search_bench

            results["search"] = search_bench.run(cloud)
            results["orthanc_find"] = orthanc.get("find")
    finally:
        stop_test_cloud(cloud)
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.no_viewer:
        from bench import viewer_bench

        results["viewer"] = viewer_bench.run()
    report(results)
    if "viewer" in results:
        viewer_bench.report(results["viewer"])
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten: {out / 'latest.json'}")
    return 0


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report_cpu(workloads: dict) -> None:
    """CPU milliseconds per instance of each of our processes over each workload's window,
    their sum, Orthanc's in the same run, and the ratio (``/proc``, :mod:`bench.cpu`)."""
    for name, f in workloads.items():
        ours = f.get("cpu_ms_per_instance") or {}
        orthanc = f.get("orthanc_cpu_ms_per_instance")
        busy = ", ".join(f"{k} {v:.2f}" for k, v in sorted(ours.items(), key=lambda kv: -kv[1])
                         if k != "sum" and v >= 0.005)
        print(f"{name}: CPU ms/instance, ours {ours.get('sum', 0):.2f} ({busy}); Orthanc "
              + (f"{orthanc:.2f}; ours/Orthanc {ours.get('sum', 0) / orthanc:.2f}x"
                 if orthanc else "not run"))


def report(results: dict) -> None:
    print(f"\n{'workload':8s} {'inst/s':>8s} {'MB/s':>6s} {'ms/inst':>8s} {'orthanc/s':>9s} "
          f"{'cloud cap/s':>11s} {'parse cap/s':>11s} {'ours/orthanc':>12s} {'ours/cloud':>10s} "
          f"{'ours/parse':>10s}")
    for name, f in results["workloads"].items():
        print(f"{name:8s} {f['instances_per_s']:8.1f} {f['mb_per_s']:6.1f} {f['ms_per_instance']:8.1f} "
              f"{(f['orthanc_per_s'] or 0):9.1f} {f['cloud_ceiling_per_s']:11.1f} "
              f"{f['parse_ceiling_per_s']:11.1f} {_ratio(f['instances_per_s'], f['orthanc_per_s']):>12s} "
              f"{_ratio(f['instances_per_s'], f['cloud_ceiling_per_s']):>10s} "
              f"{_ratio(f['instances_per_s'], f['parse_ceiling_per_s']):>10s}")
    report_cpu(results["workloads"])
    if results.get("dicomweb"):
        dicomweb_bench.report(results["dicomweb"])
    for name, f in results["workloads"].items():
        print(f"{name}: all stored at {f['stored_s']:.1f} s, all indexed at {f['indexed_s']:.1f} s, "
              f"series settled at {f['settled_s']:.1f} s")
    for name, f in results["workloads"].items():
        docs = ", ".join(f"{k} {v}" for k, v in f["documents"].items())
        print(f"{name}: documents written {f['documents_per_instance']:.2f} per instance ({docs})")
    print(f"Firestore writes: {ceilings.WRITES_DESCRIPTION}")
    print("peak RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in results["peak_rss_mib"].items()))
    big = results.get("big_archive")
    if big:
        print(f"big archive: {big['archive_bytes'] / 1e9:.2f} GB, {big['instances']} instances, "
              f"{big['instances_per_s']:.1f} inst/s; peak RSS (MiB) after it: "
              + ", ".join(f"{k} {v:.0f}" for k, v in big["peak_rss_mib"].items()))
    s, o = results.get("search") or {}, results.get("orthanc_find") or {}
    if s:
        print(f"search over {s['studies']} studies: p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms; "
              f"Orthanc /tools/find p50 {o.get('p50_ms', 0):.1f} ms -> "
              f"ours/orthanc p50 {_ratio(s['p50_ms'], o.get('p50_ms'))}; the same query straight "
              f"against the Firestore emulator: p50 {s['emulator_query_p50_ms']:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
