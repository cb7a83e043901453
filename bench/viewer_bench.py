"""What a person waits for in the viewer: click on "Open viewer" to the first image on screen,
and to every image loaded, in headless Chromium against a web stack of the local cloud.

Series (built with pydicom at run time, ingested through the same path as uploads):

* an MR series of 20 slices of pydicom-data's ``MR-SIEMENS-DICOM-WithOverlays.dcm`` (484x484,
  510 kB each) whose first file carries 2.4 MB of zero bytes after its data set, like the real
  series of issue 14 (46 s to open before the viewer cut such trailers);
* a CT series of 200 slices of pydicom-data's ``693_UNCI.dcm`` (512x512, 105 MB).

Each is opened unthrottled and on a 50 Mbit/s connection (Chromium's network emulation,
no added latency), ``--repeats`` times (median reported). ``python -m bench.viewer_bench``
runs it alone; ``make bench`` runs it after the ingest figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

MBIT_PER_SECOND = 50
TARGET_MS = 2000


def _series(tmp: Path) -> dict[str, tuple[Path, int]]:
    from tests.e2e.viewer_data import big_ct_series, series_zip, trailer_series

    return {
        "MR 20 slices, 2.4 MB zero trailer": series_zip(
            tmp / "mr20.zip", trailer_series(20, "MR-SIEMENS-DICOM-WithOverlays.dcm", "Bench^MR"), "mr"),
        "CT 200 slices 512x512": series_zip(tmp / "ct200.zip", big_ct_series(200, "Bench^CT"), "ct"),
    }


def run(repeats: int = 3) -> dict:
    from tests.e2e.conftest import ingest
    from tests.e2e.viewer_scenarios import run_viewer_scenario
    from tests.e2e.webstack import start_web_stack, stop_web_stack

    tmp = Path(tempfile.mkdtemp(prefix="pacs-viewer-bench-"))
    web = start_web_stack(tmp / "stack")
    results: dict = {"target_ms": TARGET_MS, "mbit_per_second": MBIT_PER_SECOND, "series": {}}
    try:
        user = web.cloud.create_user(f"bench-viewer-{uuid.uuid4().hex[:10]}@example.test")
        web.cloud.confirm_adult(user)
        ingested = 0
        for name, (path, instances) in _series(tmp).items():
            ingested += instances
            before = {s["id"] for s in results["series"].values()}
            studies = ingest(web, user, path, ingested)
            study = next(s for s in studies if s["id"] not in before)
            runs: dict[str, list[dict]] = {"unthrottled": [], f"{MBIT_PER_SECOND} Mbit/s": []}
            for _ in range(repeats):
                for label, mbit in (("unthrottled", 0), (f"{MBIT_PER_SECOND} Mbit/s", MBIT_PER_SECOND)):
                    out = run_viewer_scenario("progressive", web, {
                        "email": user.email, "password": user.password, "studyId": study["id"],
                        "mbitPerSecond": mbit, "slices": instances, "waitForAll": True}, timeout=900)
                    runs[label].append({"first_image_ms": out["firstImageMs"],
                                        "all_loaded_ms": out["loadedMs"]})
            results["series"][name] = {"id": study["id"], "instances": instances, "runs": runs,
                                       "median": {label: {k: statistics.median(r[k] for r in rs)
                                                          for k in ("first_image_ms", "all_loaded_ms")}
                                                  for label, rs in runs.items()}}
    finally:
        stop_web_stack(web)
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def report(results: dict) -> None:
    print(f"\nviewer: click to first image / to all images loaded (median; target first image "
          f"{results['target_ms'] / 1000:.0f} s)")
    for name, r in results["series"].items():
        for label, m in r["median"].items():
            first = m["first_image_ms"]
            print(f"  {name:36s} {label:14s} first image {first / 1000:5.2f} s "
                  f"{'(on target)' if first <= results['target_ms'] else '(over target)':14s} "
                  f"all {m['all_loaded_ms'] / 1000:6.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.viewer_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = run(args.repeats)
    report(results)
    out = Path(__file__).resolve().parent.parent / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "viewer.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {out / 'viewer.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
