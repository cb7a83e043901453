"""Every DICOM file pydicom and pydicom-data ship, through the real ingest path: accepted
files are stored and indexed with every stored field equal to pydicom's own reading;
the rest are rejected with the header reader's reason."""

from __future__ import annotations

import pydicom
import pytest
from pacs import ids
from pacs.dicom import fields as dicom_fields
from pacs.dicom import header as dicom_header
from pacs.indexing.catalog import INSTANCE_FIELDS, SERIES_FIELDS, STUDY_FIELDS

from tests.dicom_corpus import corpus
from tests.ingest_helpers import file_results, upload_bytes, wait_final, wait_settled, zip_bytes

pytestmark = [pytest.mark.localcloud, pytest.mark.slow]
LIMITS = {"max_header_bytes": 64 * 1024**2, "inflate_max_bytes": 256 * 1024**2}
COMPUTED = {"ModalitiesInStudy"}  # recomputed from the series on settle


def _classify() -> tuple[dict[str, tuple[bytes, dict]], dict[str, tuple[bytes, str]]]:
    accepted, rejected = {}, {}
    for name, path in corpus().items():
        data = path.read_bytes()
        try:
            header = dicom_header.read_header(data, len(data), **LIMITS)
        except dicom_header.HeaderRejected as err:
            rejected[name] = (data, err.code)
            continue
        reference = dicom_fields.field_values_from_pydicom(pydicom.dcmread(path))
        accepted[name] = (data, {**reference, "_sop": header.sop_instance_uid})
    return accepted, rejected


def _groups(accepted: dict[str, tuple[bytes, dict]]) -> list[list[str]]:
    """Split files so no group holds one SOP Instance UID twice (each group is one user)."""
    groups: list[tuple[set[str], list[str]]] = []
    for name, (_, fields) in sorted(accepted.items()):
        for sops, members in groups:
            if fields["_sop"] not in sops:
                sops.add(fields["_sop"])
                members.append(name)
                break
        else:
            groups.append(({fields["_sop"]}, [name]))
    return [members for _, members in groups]


def test_whole_corpus_is_ingested_like_pydicom_reads_it(cloud):
    accepted, rejected = _classify()
    assert len(accepted) > 150 and len(rejected) > 20
    fs = cloud.clients().firestore
    key = cloud.settings().hash_key
    compared = {"instance": 0, "series": 0, "study": 0}
    groups = _groups(accepted)
    groups[0] = groups[0] + sorted(rejected)
    for members in groups:
        user = cloud.create_user()
        data = {**accepted, **rejected}
        archive = zip_bytes([(name, data[name][0]) for name in members])
        upload_id = upload_bytes(cloud, user, archive, "corpus.zip", "application/zip")
        wait_final(cloud, upload_id, timeout=300)
        results = {r["name"]: r for r in file_results(cloud, upload_id)}
        stored = [n for n in members if n in accepted]
        wait_settled(cloud, user.uid, len(stored), timeout=300)
        for name in members:
            if name.rsplit("/", 1)[-1].upper() == "DICOMDIR":
                assert (results[name]["status"], results[name]["reason"]) == ("skipped", "dicomdir")
                continue
            if name in rejected:
                assert results[name]["status"] == "rejected", name
                assert results[name]["reason"] == rejected[name][1], name
                continue
            assert results[name]["status"] == "stored", (name, results[name])
            fields = accepted[name][1]
            study = ids.study_key(key, user.uid, fields["StudyInstanceUID"])
            series = ids.series_key(key, user.uid, fields["SeriesInstanceUID"])
            instance = ids.instance_key(key, user.uid, fields["SOPInstanceUID"])
            doc = fs.document(f"studies/{study}/series/{series}/instances/{instance}").get().to_dict()
            assert {k: doc[k] for k in INSTANCE_FIELDS} == {k: fields[k] for k in INSTANCE_FIELDS}, name
            compared["instance"] += 1
            same_series = [n for n in stored if accepted[n][1]["SeriesInstanceUID"] == fields["SeriesInstanceUID"]]
            if same_series == [name]:
                doc = fs.document(f"studies/{study}/series/{series}").get().to_dict()
                assert {k: doc[k] for k in SERIES_FIELDS} == {k: fields[k] for k in SERIES_FIELDS}, name
                compared["series"] += 1
            same_study = [n for n in stored if accepted[n][1]["StudyInstanceUID"] == fields["StudyInstanceUID"]]
            if same_study == [name]:
                doc = fs.document(f"studies/{study}").get().to_dict()
                keys = set(STUDY_FIELDS) - COMPUTED
                assert {k: doc[k] for k in keys} == {k: fields[k] for k in keys}, name
                compared["study"] += 1
    assert compared["instance"] == len(accepted)
    assert compared["series"] > 50 and compared["study"] > 30, compared
