"""CPU per DICOM JSON encoding of one instance header, raw-element encoder against pydicom.

``PYTHONPATH=functions:. .venv/bin/python -m bench.json_encoding [--calls N]`` reads each
workload file's header as ingest does (:func:`pacs.dicom.header.read_header_dataset`) and
times, in process CPU, :func:`pacs.dicom.json_header.dataset_json` (the raw-element encoder
of :mod:`pacs.dicom.json_encoder`) and :func:`~pacs.dicom.json_header.dataset_json_reference`
(pydicom's ``to_json_dict``) on fresh reads, best of three runs of ``N`` calls each (issue 17;
the figures are in the README's bench section). Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import io
import time
import warnings

from pacs.dicom.header import read_header_dataset
from pacs.dicom.json_header import dataset_json, dataset_json_reference

from tests.dicom_corpus import corpus_file

FILES = ("CT_small.dcm", "693_UNCI.dcm")  # W2's and W1's instance
LIMITS = {"max_header_bytes": 64 * 1024**2, "inflate_max_bytes": 256 * 1024**2}


def ms_per_call(function, data: bytes, calls: int) -> float:
    """Best of three runs: CPU milliseconds per call of ``function`` on a fresh read."""
    runs = []
    for _ in range(3):
        spent = 0.0
        for _ in range(calls):
            header, ds = read_header_dataset(io.BytesIO(data), len(data), **LIMITS)
            start = time.process_time()
            function(ds, header)
            spent += time.process_time() - start
        runs.append(spent / calls * 1000)
    return min(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.json_encoding", description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print("file             pydicom ms   encoder ms   ratio")
    for name in FILES:
        data = corpus_file(name).read_bytes()
        before = ms_per_call(dataset_json_reference, data, args.calls)
        after = ms_per_call(dataset_json, data, args.calls)
        print(f"{name:15s}  {before:10.3f}   {after:10.3f}   {before / after:4.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
