"""Deterministic workloads: W1, 500 instances of pydicom-data's 512x512 CT ``693_UNCI.dcm``
in one series; W2, 1,000 instances of ``CT_small.dcm`` in 10 series. Fresh UIDs are derived
from fixed seeds, so every run builds byte-identical archives."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from tests.dicom_corpus import corpus_file


@dataclass(frozen=True)
class Workload:
    name: str
    path: Path
    instances: int
    series: int
    instance_bytes: int


def _uid(seed: str) -> str:
    return generate_uid(entropy_srcs=[seed])


def build(name: str, source: Path, count: int, series: int, out_dir: Path,
          compresslevel: int = 6) -> Workload:
    template = pydicom.dcmread(source)
    study = _uid(f"{name}-study")
    series_uids = [_uid(f"{name}-series-{i}") for i in range(series)]
    path = out_dir / f"{name}.zip"
    total = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=compresslevel) as zf:
        for i in range(count):
            ds = template.copy()
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series_uids[i % series]
            ds.SOPInstanceUID = _uid(f"{name}-sop-{i}")
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = i // series + 1
            ds.ImagePositionPatient = [0.0, 0.0, float(i // series)]
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            data = buf.getvalue()
            total += len(data)
            zf.writestr(f"{i:05d}.dcm", data)
    return Workload(name, path, count, series, total)


def build_all(out_dir: Path, names: set[str] | None = None) -> list[Workload]:
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [("W1", "693_UNCI.dcm", 500, 1), ("W2", "CT_small.dcm", 1000, 10)]
    return [build(name, corpus_file(source), count, series, out_dir)
            for name, source, count, series in specs if names is None or name in names]


def members(workload: Workload) -> list[bytes]:
    with zipfile.ZipFile(workload.path) as zf:
        return [zf.read(n) for n in zf.namelist()]
