"""The DICOMweb tests' data and oracle: real pydicom test files (the ``dicomdirtests`` set:
two patients, five studies of CR, CT and MR series, and ``CT_small.dcm``), ingested through
the real upload path, and what pydicom reads from the originals."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file

from tests.ingest_helpers import upload_bytes, wait_final, wait_settled, zip_bytes
from tests.localcloud_fixture import LocalCloud, User, wait_for

DICOMDIR_TESTS = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"


@dataclass
class Original:
    """One file as pydicom reads it, with its bytes."""

    path: Path
    data: bytes
    ds: pydicom.Dataset


@dataclass
class StudyTruth:
    uid: str
    files: list[Original] = field(default_factory=list)

    @property
    def first(self) -> pydicom.Dataset:
        return self.files[0].ds

    @property
    def series(self) -> dict[str, list[Original]]:
        out: dict[str, list[Original]] = defaultdict(list)
        for f in self.files:
            out[f.ds.SeriesInstanceUID].append(f)
        return dict(out)

    @property
    def modalities(self) -> list[str]:
        return sorted({f.ds.Modality for f in self.files})


def read_original(path: Path | str) -> Original:
    path = Path(path)
    data = path.read_bytes()
    return Original(path, data, pydicom.dcmread(path))


def dicomdir_files() -> list[Path]:
    return sorted(p for folder in ("77654033", "98892003")
                  for p in (DICOMDIR_TESTS / folder).rglob("*") if p.is_file())


def studies_of(originals: list[Original]) -> dict[str, StudyTruth]:
    out: dict[str, StudyTruth] = {}
    for o in originals:
        out.setdefault(o.ds.StudyInstanceUID, StudyTruth(o.ds.StudyInstanceUID)).files.append(o)
    return out


def value(item: dict[str, Any], tag: str) -> Any:
    """The first value of a DICOM JSON element (a PN as its Alphabetic group)."""
    values = item.get(tag, {}).get("Value") or [None]
    first = values[0]
    return first.get("Alphabetic") if isinstance(first, dict) else first


def values(item: dict[str, Any], tag: str) -> list[Any]:
    return list(item.get(tag, {}).get("Value") or [])


def ingest(cloud: LocalCloud, user: User, originals: list[Original],
           totals: dict[str, int] | None = None) -> None:
    """Upload the files as one ZIP through create_upload and the session; wait until every
    instance is indexed and every study of the user carries its settled counts: ``totals``
    (StudyInstanceUID → instances) when the user's studies already held instances, else
    the counts of these files."""
    data = zip_bytes([(f"f{i:03d}.dcm", o.data) for i, o in enumerate(originals)])
    record = wait_final(cloud, upload_bytes(cloud, user, data, "studies.zip", "application/zip"))
    assert record["status"] == "complete", record
    wait_settled(cloud, user.uid, len(originals))
    expected = totals or {uid: len(s.files) for uid, s in studies_of(originals).items()}
    fs = cloud.clients().firestore

    def counted():
        from google.cloud.firestore_v1.base_query import FieldFilter

        docs = [s.to_dict() for s in fs.collection("studies").where(
            filter=FieldFilter("owner", "==", user.uid)).stream()]
        return {d["StudyInstanceUID"]: d.get("instance_count") for d in docs} == expected

    wait_for(counted, timeout=120, what="study counts to settle")


def expected_studies(studies: dict[str, StudyTruth], **match: str) -> set[str]:
    """StudyInstanceUIDs matching, with this slice's semantics (names compared whole and
    case-insensitively, a trailing * as a prefix; dates inclusive ranges)."""
    out = set()
    for uid, study in studies.items():
        ds = study.first
        name = str(ds.PatientName).lower()
        ok = True
        for key, want in match.items():
            if key == "PatientName":
                ok &= (name.startswith(want[:-1].lower()) if want.endswith("*")
                       else name == want.lower())
            elif key == "StudyDate":
                low, sep, high = want.partition("-")
                if not sep:
                    high = low
                ok &= (not low or ds.StudyDate >= low) and (not high or ds.StudyDate <= high)
            elif key == "StudyInstanceUID":
                ok &= uid in want.split("\\")
            elif key == "ModalitiesInStudy":
                ok &= bool(set(want.split("\\")) & set(study.modalities))
            else:
                ok &= str(ds.get(key)) == want
        if ok:
            out.add(uid)
    return out
