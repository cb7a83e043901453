"""DICOMweb through the real ``dicomweb-client``: QIDO-RS study, series and instance searches
with each filter, and the WADO-RS instance retrieve, over real pydicom test files ingested
through the upload path. Answers equal what pydicom reads from the original files; another
user's UIDs behave exactly like unknown ones; unsupported keys are a 400 with the reason.

Data and oracle: ``tests/dicomweb_helpers.py``.
"""

from __future__ import annotations

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pacs.dicomweb import qido, study_match
from pydicom.data import get_testdata_file

from tests.dicomweb_helpers import (
    dicomdir_files,
    expected_studies,
    ingest,
    read_original,
    studies_of,
    value,
    values,
)
from tests.localcloud_fixture import LocalCloud, User

pytestmark = pytest.mark.localcloud

STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"


class World:
    """Alice owns the five dicomdirtests studies; Bob owns CT_small and a copy of one of
    Alice's CR instances (the same UIDs, his own copy)."""

    def __init__(self, cloud: LocalCloud):
        self.cloud = cloud
        self.alice_files = [read_original(p) for p in dicomdir_files()]
        self.alice_studies = studies_of(self.alice_files)
        shared = next(o for o in self.alice_files if o.ds.Modality == "CR")
        self.bob_files = [read_original(get_testdata_file("CT_small.dcm")), shared]
        self.bob_studies = studies_of(self.bob_files)
        self.shared = shared
        self.alice: User = cloud.create_user()
        self.bob: User = cloud.create_user()
        ingest(cloud, self.alice, self.alice_files)
        ingest(cloud, self.bob, self.bob_files)

    def client(self, user: User, prefix: str = "") -> DICOMwebClient:
        return DICOMwebClient(url=self.cloud.urls["dicomweb"] + prefix, headers=user.headers())


@pytest.fixture(scope="module")
def world(cloud: LocalCloud) -> World:
    return World(cloud)


def uids(items: list[dict]) -> list[str]:
    return [value(i, STUDY_UID) for i in items]


def test_all_studies_equal_what_pydicom_reads(world):
    found = world.client(world.alice).search_for_studies()
    assert sorted(uids(found)) == sorted(world.alice_studies)
    for item in found:
        truth = world.alice_studies[value(item, STUDY_UID)]
        ds = truth.first
        assert value(item, "00100010") == str(ds.PatientName)
        assert value(item, "00100020") == ds.PatientID
        assert value(item, "00080020") == ds.StudyDate
        assert value(item, "00080030") == ds.StudyTime
        assert value(item, "00080050") == ds.AccessionNumber
        assert value(item, "00080005") == "ISO_IR 192"
        assert values(item, "00080061") == truth.modalities
        assert value(item, "00201206") == len(truth.series)
        assert value(item, "00201208") == len(truth.files)
        assert item["00100010"]["vr"] == "PN" and item["00201208"]["vr"] == "IS"
    # Newest first.
    dates = [value(i, "00080020") + (value(i, "00080030") or "") for i in found]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize("match", [
    {"PatientName": "Doe^Peter"},
    {"PatientName": "doe^ARCHIBALD"},
    {"PatientName": "Doe^Arch*"},
    {"PatientName": "Doe*"},
    {"PatientName": "Doe"},  # literal: the whole name, so no study
    {"PatientID": "98890234"},
    {"PatientID": "77654033"},
    {"AccessionNumber": "2"},
    {"AccessionNumber": "428"},
    {"StudyDate": "20030505"},
    {"StudyDate": "19950101-20011231"},
    {"StudyDate": "20020101-"},
    {"StudyDate": "-19991231"},
    {"StudyDate": "20100101-"},
    {"ModalitiesInStudy": "CT"},
    {"ModalitiesInStudy": "MR"},
    {"ModalitiesInStudy": "CR\\CT"},
    {"PatientName": "Doe^Archibald", "ModalitiesInStudy": "CR"},
    {"PatientID": "77654033", "StudyDate": "19950903", "AccessionNumber": "2"},
])
def test_study_filters(world, match):
    found = world.client(world.alice).search_for_studies(search_filters=match)
    expected = expected_studies(world.alice_studies, **match)
    assert sorted(uids(found)) == sorted(expected)
    assert len(uids(found)) == len(set(uids(found)))
    if "Doe" not in match.values() and "20100101-" not in match.values():
        assert expected  # the case is not vacuous


def test_a_scan_past_its_budget_says_so(world, monkeypatch):
    """The domain search against the emulator: a check the index cannot express reads at
    most SCAN_BUDGET documents and reports that it stopped (the entry point then sends a
    Warning header)."""
    fs, key = world.cloud.clients().firestore, world.cloud.settings().hash_key
    query = [("PatientName", "Doe^Peter")]
    peter = expected_studies(world.alice_studies, PatientName="Doe^Peter")
    found, truncated = qido.search_studies(fs, key, world.alice.uid, query)
    assert sorted(uids(found)) == sorted(peter) and not truncated
    monkeypatch.setattr(study_match, "SCAN_BUDGET", len(peter) - 1)
    found, truncated = qido.search_studies(fs, key, world.alice.uid, query)
    assert len(found) == len(peter) - 1 and truncated


def test_study_instance_uid_single_and_list(world):
    client = world.client(world.alice)
    every = sorted(world.alice_studies)
    assert uids(client.search_for_studies(search_filters={"StudyInstanceUID": every[0]})) == [
        every[0]]
    pair = "\\".join(every[1:3])
    assert sorted(uids(client.search_for_studies(search_filters={"StudyInstanceUID": pair}))) \
        == every[1:3]
    both = client.search_for_studies(search_filters={"StudyInstanceUID": pair,
                                                     "ModalitiesInStudy": "CT"})
    assert sorted(uids(both)) == sorted(expected_studies(
        world.alice_studies, StudyInstanceUID=pair, ModalitiesInStudy="CT"))


def test_limit_and_offset_page_through_the_same_order(world):
    client = world.client(world.alice)
    everything = uids(client.search_for_studies())
    pages = [uids(client.search_for_studies(limit=2, offset=o)) for o in (0, 2, 4, 6)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert sum(pages, []) == everything
    # dicomweb-client's own paging (offset until an empty page) sees the same.
    assert uids(client.search_for_studies(limit=2, get_remaining=True)) == everything


def test_series_and_instances_equal_what_pydicom_reads(world):
    client = world.client(world.alice)
    for study_uid, truth in world.alice_studies.items():
        series = client.search_for_series(study_instance_uid=study_uid)
        assert sorted(value(s, SERIES_UID) for s in series) == sorted(truth.series)
        for item in series:
            assert value(item, STUDY_UID) == study_uid
            files = truth.series[value(item, SERIES_UID)]
            first = files[0].ds
            assert value(item, "00080060") == first.Modality
            assert value(item, "00200011") == first.get("SeriesNumber")
            assert value(item, "00201209") == len(files)
            instances = client.search_for_instances(study_instance_uid=study_uid,
                                                    series_instance_uid=value(item, SERIES_UID))
            by_uid = {f.ds.SOPInstanceUID: f.ds for f in files}
            assert sorted(value(i, SOP_UID) for i in instances) == sorted(by_uid)
            for inst in instances:
                ds = by_uid[value(inst, SOP_UID)]
                assert value(inst, "00080016") == ds.SOPClassUID
                assert value(inst, "00200013") == ds.get("InstanceNumber")
                assert value(inst, "00280010") == ds.get("Rows")
                assert value(inst, "00280011") == ds.get("Columns")
                assert value(inst, SERIES_UID) == ds.SeriesInstanceUID
                assert value(inst, "00081190").endswith(
                    f"/studies/{study_uid}/series/{ds.SeriesInstanceUID}/instances/"
                    f"{ds.SOPInstanceUID}")


def test_series_and_instance_filters(world):
    client = world.client(world.alice)
    mr = next(s for s in world.alice_studies.values() if len(s.series) > 1
              and s.modalities == ["MR"])
    series_uid, files = max(mr.series.items(), key=lambda kv: len(kv[1]))
    got = client.search_for_series(study_instance_uid=mr.uid,
                                   search_filters={"SeriesInstanceUID": series_uid})
    assert [value(s, SERIES_UID) for s in got] == [series_uid]
    assert client.search_for_series(study_instance_uid=mr.uid,
                                    search_filters={"Modality": "CT"}) == []
    assert len(client.search_for_series(study_instance_uid=mr.uid,
                                        search_filters={"Modality": "MR"})) == len(mr.series)
    assert len(client.search_for_series(study_instance_uid=mr.uid, limit=1, offset=1)) == 1
    sop = files[-1].ds.SOPInstanceUID
    got = client.search_for_instances(study_instance_uid=mr.uid, series_instance_uid=series_uid,
                                      search_filters={"SOPInstanceUID": sop})
    assert [value(i, SOP_UID) for i in got] == [sop]
    page = client.search_for_instances(study_instance_uid=mr.uid, series_instance_uid=series_uid,
                                       limit=2, offset=1)
    assert len(page) == min(2, len(files) - 1)


def test_another_users_uids_behave_like_unknown_ones(world):
    bob = world.client(world.bob)
    assert sorted(uids(bob.search_for_studies())) == sorted(world.bob_studies)
    alice_only = next(u for u in world.alice_studies if u not in world.bob_studies)
    unknown = "1.2.3.4.5.6.7.8.9"
    for study_uid in (alice_only, unknown):
        assert bob.search_for_studies(search_filters={"StudyInstanceUID": study_uid}) == []
        assert bob.search_for_series(study_instance_uid=study_uid) == []
    series_uid = next(iter(world.alice_studies[alice_only].series))
    assert bob.search_for_instances(study_instance_uid=alice_only,
                                    series_instance_uid=series_uid) == []
    # The study both have: each sees only their own copy and counts.
    shared = world.shared.ds
    for user, count in ((world.bob, 1),
                        (world.alice, len(world.alice_studies[shared.StudyInstanceUID].files))):
        got = world.client(user).search_for_studies(
            search_filters={"StudyInstanceUID": shared.StudyInstanceUID})
        assert len(got) == 1 and value(got[0], "00201208") == count
    # Bob's name search never reaches Alice's studies.
    assert uids(bob.search_for_studies(search_filters={"PatientName": "Doe^Peter"})) == []


def test_empty_result_is_200_and_an_empty_array(world):
    resp = requests.get(world.cloud.urls["dicomweb"] + "/studies", timeout=30,
                        params={"PatientID": "no-such-patient"}, headers=world.alice.headers())
    assert resp.status_code == 200 and resp.json() == []
    assert resp.headers["Content-Type"] == "application/dicom+json"


@pytest.mark.parametrize("path, params, code", [
    ("/studies", {"Colour": "red"}, "unknown_query_key"),
    ("/studies", {"Modality": "CT"}, "unsupported_query"),
    ("/studies", {"StudyTime": "12-11"}, "bad_value"),
    ("/studies", {"ModalitiesInStudy": "C*"}, "unsupported_wildcard"),
    ("/studies", {"fuzzymatching": "perhaps"}, "unsupported_query"),
    ("/studies", {"includefield": "00081030,00180050"}, "unsupported_query"),
    ("/studies", {"StudyDate": "2003-05-05-x"}, "bad_value"),
    ("/series", {"SOPInstanceUID": "1.2"}, "unsupported_query"),
    ("/instances", {"SeriesDescription": "x"}, "unsupported_query"),
    ("/studies", {"StudyInstanceUID": "1.2.abc"}, "bad_value"),
    ("/studies", {"limit": "many"}, "bad_limit"),
    ("/studies", {"offset": "-1"}, "bad_offset"),
    ("/studies/1.2.3/series", {"SeriesDescription": "x"}, "unsupported_query"),
    ("/studies/1.2.3/series/1.2.4/instances", {"Rows": "512"}, "unsupported_query"),
])
def test_unsupported_or_bad_keys_are_400_with_the_reason(world, path, params, code):
    resp = requests.get(world.cloud.urls["dicomweb"] + path, params=params, timeout=30,
                        headers=world.alice.headers())
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == code and resp.json()["message"]


def test_dicomweb_client_sees_the_400(world):
    with pytest.raises(requests.HTTPError) as err:
        world.client(world.alice).search_for_studies(search_filters={"SeriesDescription": "x"})
    assert err.value.response.status_code == 400
    assert "SeriesDescription" in err.value.response.json()["message"]


def test_includefield_of_returned_attributes_and_the_hosting_prefix(world):
    client = world.client(world.alice, prefix="/dicomweb")
    got = client.search_for_studies(fields=["PatientID", "00201208"])
    assert sorted(uids(got)) == sorted(world.alice_studies)


def test_auth_is_required(world):
    url = world.cloud.urls["dicomweb"] + "/studies"
    assert requests.get(url, timeout=30).status_code == 401
    bad = requests.get(url, timeout=30, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    for path in ("/series", "/instances", "/dicomweb/instances"):
        assert requests.get(world.cloud.urls["dicomweb"] + path, timeout=30).status_code == 401
    searches = requests.put(url, timeout=30, headers=world.alice.headers())
    assert searches.status_code == 400 and searches.json()["error"] == "method_not_allowed"


def test_wado_instance_retrieve_equals_the_original(world):
    client = world.client(world.alice)
    for original in world.alice_files[:4] + [f for f in world.alice_files
                                             if f.ds.Modality == "CT"][:1]:
        ds = original.ds
        got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                       ds.SOPInstanceUID)
        assert got.SOPInstanceUID == ds.SOPInstanceUID
        assert got == ds  # every element, pixel data included
        assert got.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID


def test_wado_framing_bytes_for_strict_parsers(world):
    original = world.alice_files[0]
    ds = original.ds
    url = (f"{world.cloud.urls['dicomweb']}/studies/{ds.StudyInstanceUID}/series/"
           f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
    resp = requests.get(url, timeout=60, headers={
        **world.alice.headers(), "Accept": 'multipart/related; type="application/dicom"'})
    assert resp.status_code == 200
    content_type = resp.headers["Content-Type"]
    assert content_type.startswith('multipart/related; type="application/dicom"; boundary=')
    boundary = content_type.rsplit("boundary=", 1)[1].encode()
    body = resp.content
    syntax = ds.file_meta.TransferSyntaxUID
    head = (b"--" + boundary + b"\r\nContent-Type: application/dicom; transfer-syntax="
            + syntax.encode() + b"\r\n\r\n")
    tail = b"\r\n--" + boundary + b"--\r\n"
    assert body.startswith(head) and body.endswith(tail)
    stored = body[len(head):-len(tail)]
    # The stored copy is the original with its preamble zeroed (CVE-2019-11687).
    assert stored[:128] == b"\0" * 128 and stored[128:] == original.data[128:]
    assert pydicom.dcmread(__import__("io").BytesIO(stored)).SOPInstanceUID == ds.SOPInstanceUID
    refused = requests.get(url, timeout=30, headers={**world.alice.headers(),
                                                     "Accept": "application/json"})
    assert refused.status_code == 406
    other = requests.get(url, timeout=30, headers={
        **world.alice.headers(),
        "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.3.4'})
    assert other.status_code == 406


def test_wado_another_users_instance_is_404_like_an_unknown_one(world):
    alice_only = next(o.ds for o in world.alice_files
                      if o.ds.StudyInstanceUID not in world.bob_studies)
    base = world.cloud.urls["dicomweb"]
    for sop in (alice_only.SOPInstanceUID, "1.2.3.4.5"):
        url = (f"{base}/studies/{alice_only.StudyInstanceUID}/series/"
               f"{alice_only.SeriesInstanceUID}/instances/{sop}")
        resp = requests.get(url, timeout=30, headers=world.bob.headers())
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"


def test_logs_hold_no_patient_names(world):
    world.client(world.alice).search_for_studies(search_filters={"PatientName": "Doe^Peter"})
    requests.get(world.cloud.urls["dicomweb"] + "/studies", params={"PatientName": "*Peter"},
                 headers=world.alice.headers(), timeout=30)
    text = (world.cloud.log_dir / f"{world.cloud.project}.dicomweb.log").read_text()
    assert text  # the function logs (the refusal above at least)
    for secret in ("Peter", "Archibald", "98890234", "77654033"):
        assert secret not in text
