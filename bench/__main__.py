"""``python -m bench``: prints a table with ratios and writes bench-results/latest.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench import ceilings, ours, workloads
from tests.localcloud_fixture import start_test_cloud, stop_test_cloud

ROOT = Path(__file__).resolve().parent.parent


def run_orthanc(paths: list[Path]) -> dict:
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m", "bench.orthanc",
                           *map(str, paths)], capture_output=True, text=True, timeout=3600,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="pacs-bench-"))
    built = workloads.build_all(tmp / "workloads")
    print(f"workloads: " + ", ".join(f"{w.name} {w.instances} instances, "
                                     f"{w.path.stat().st_size / 1e6:.0f} MB zip" for w in built))
    orthanc = run_orthanc([w.path for w in built])
    cloud = start_test_cloud(tmp / "cloud")
    results: dict = {"when": datetime.now(timezone.utc).isoformat(), "workloads": {}}
    try:
        for w in built:
            figures = ours.ingest(cloud, w)
            figures["parse_ceiling_per_s"] = ceilings.parse_ceiling(w)
            figures["cloud_ceiling_per_s"] = ceilings.local_cloud_ceiling(w, cloud.clients())
            o = orthanc.get(w.name)
            figures["orthanc_per_s"] = o["instances"] / o["seconds"] if o else None
            results["workloads"][w.name] = figures
        results["peak_rss_mib"] = ours.peak_rss_mib(cloud)
        from bench import search_bench

        results["search"] = search_bench.run(cloud)
        results["orthanc_find"] = orthanc.get("find")
    finally:
        stop_test_cloud(cloud)
    report(results)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten: {out / 'latest.json'}")
    return 0


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


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
    print(f"Firestore writes per instance: {ceilings.WRITES_PER_INSTANCE} "
          "(result, instance, series create, study create) + settle writes per series")
    print("peak RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in results["peak_rss_mib"].items()))
    s, o = results.get("search") or {}, results.get("orthanc_find") or {}
    if s:
        print(f"search over {s['studies']} studies: p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms; "
              f"Orthanc /tools/find p50 {o.get('p50_ms', 0):.1f} ms -> "
              f"ours/orthanc p50 {_ratio(s['p50_ms'], o.get('p50_ms'))}; the same query straight "
              f"against the Firestore emulator: p50 {s['emulator_query_p50_ms']:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
