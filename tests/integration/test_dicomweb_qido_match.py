"""QIDO-RS matching through the real ``dicomweb-client``: wildcards anywhere (OHIF's
``*value*``), fuzzy person names, StudyDescription, StudyTime, includefield, and the searches
of all series and all instances (``/series``, ``/instances``) with study keys too.

Every expected answer is computed here from what pydicom reads from the original files, by
an oracle of its own (:func:`oracle`: ``fnmatch`` over folded text, ranges over pydicom's
values), never by the service's matching code. The world (Alice: the five dicomdirtests
studies; Bob: CT_small and a copy of one of Alice's instances) is ``test_dicomweb_qido``'s.
"""

from __future__ import annotations

import fnmatch
import unicodedata

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pacs.dicomweb import qido, qido_root, study_match

from tests.dicomweb_helpers import value, values
from tests.integration.test_dicomweb_qido import World
from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud

STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"


@pytest.fixture(scope="module")
def world(cloud: LocalCloud) -> World:
    return World(cloud)


def folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def text_hit(pattern: str, stored: str) -> bool:
    return fnmatch.fnmatchcase(folded(stored.strip()), folded(pattern))


def range_hit(query: str, stored: str, width: int) -> bool:
    """DA/TM range matching over digits (a TM bound given to the hour or minute covers all
    of it)."""
    low, sep, high = query.partition("-")
    if not sep:
        high = low
    stored = stored.split(".")[0].ljust(width, "0")
    return (not low or stored >= low.ljust(width, "0")) and (
        not high or stored <= high.ljust(width, "9"))


def oracle(ds, modalities: list[str], key: str, want: str, fuzzy: bool = False) -> bool:
    if key == "PatientName":
        if fuzzy:
            words = [w for w in folded(want).replace("^", " ").split() if w]
            parts = folded(str(ds.PatientName)).replace("^", " ").split()
            return all(any(p.startswith(w) for p in parts) for w in words)
        return text_hit(want, str(ds.PatientName))
    if key in ("PatientID", "AccessionNumber", "StudyDescription", "Modality"):
        return text_hit(want, str(ds.get(key) or ""))
    if key == "StudyDate":
        return range_hit(want, ds.StudyDate, 8)
    if key == "StudyTime":
        return range_hit(want, ds.StudyTime, 6)
    if key == "ModalitiesInStudy":
        return bool(set(want.split("\\")) & set(modalities))
    uid_of = {"StudyInstanceUID": ds.StudyInstanceUID,
              "SeriesInstanceUID": ds.SeriesInstanceUID, "SOPInstanceUID": ds.SOPInstanceUID}
    return uid_of[key] in want.split("\\")


def expected_files(world: World, fuzzy: bool = False, **match: str):
    out = []
    for study in world.alice_studies.values():
        for f in study.files:
            if all(oracle(f.ds, study.modalities, k, v, fuzzy) for k, v in match.items()):
                out.append(f.ds)
    return out


STUDY_MATCHES = [
    {"PatientName": "*eter*"},  # what OHIF sends
    {"PatientName": "*ARCH*"},
    {"PatientName": "D?e^P*"},
    {"PatientName": "*^Peter"},
    {"PatientName": "Do*ld"},
    {"PatientID": "*0234"},
    {"PatientID": "9889?234"},
    {"AccessionNumber": "42*"},
    {"StudyDescription": "brain"},
    {"StudyDescription": "Brain-MRA"},
    {"StudyDescription": "*head*"},
    {"StudyDescription": "XR C Spine*"},
    {"StudyDescription": "*a?ot*"},
    {"StudyTime": "025109"},
    {"StudyTime": "04-06"},
    {"StudyTime": "1200-"},
    {"StudyTime": "-0300"},
    {"StudyTime": "0457-0508", "StudyDate": "20030505"},
    {"PatientName": "*doe*", "ModalitiesInStudy": "CR\\CT", "StudyTime": "-1800"},
    {"PatientName": "*e*", "StudyDescription": "*brain*", "AccessionNumber": "*"},
]


@pytest.mark.parametrize("match", STUDY_MATCHES)
def test_study_wildcards_descriptions_and_times(world, match):
    found = world.client(world.alice).search_for_studies(search_filters=match)
    expected = {ds.StudyInstanceUID for ds in expected_files(world, **match)}
    got = [value(i, STUDY_UID) for i in found]
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))


@pytest.mark.parametrize("name, hits", [
    ("doe pet", True), ("Pe^Do", True), ("DÖE", True), ("arch", True), ("peters", False),
    ("*eter", True)])
def test_fuzzy_person_names(world, name, hits):
    client = world.client(world.alice)
    found = client.search_for_studies(search_filters={"PatientName": name},
                                      fuzzymatching=True)
    fuzzy = not any(c in name for c in "*?")
    expected = {ds.StudyInstanceUID for ds in expected_files(world, fuzzy=fuzzy,
                                                             PatientName=name)}
    assert sorted(value(i, STUDY_UID) for i in found) == sorted(expected)
    assert bool(expected) is hits


def test_bob_never_matches_alices_studies_by_wildcard(world):
    bob = world.client(world.bob)
    assert bob.search_for_studies(search_filters={"PatientName": "*eter*"}) == []
    got = bob.search_for_studies(search_filters={"PatientName": "*"})
    assert sorted(value(i, STUDY_UID) for i in got) == sorted(world.bob_studies)


def test_includefield_all_and_retrieve_urls(world):
    client = world.client(world.alice)
    studies = client.search_for_studies(fields=["all"])
    assert studies and all(value(s, "00081190").endswith(f"/studies/{value(s, STUDY_UID)}")
                           for s in studies)
    # OHIF asks for StudyDescription and Modality on a study search: not a 400.
    resp = requests.get(world.cloud.urls["dicomweb"] + "/studies", timeout=30,
                        headers=world.alice.headers(),
                        params={"includefield": "00081030,00080060", "limit": "101",
                                "offset": "0", "fuzzymatching": "false",
                                "PatientName": "*eter*"})
    assert resp.status_code == 200, resp.text
    peter = {ds.StudyInstanceUID: ds for ds in expected_files(world, PatientName="*eter*")}
    assert sorted(value(i, STUDY_UID) for i in resp.json()) == sorted(peter)
    for item in resp.json():
        assert value(item, "00081030") == peter[value(item, STUDY_UID)].StudyDescription
    series_uid = next(iter(next(iter(world.alice_studies.values())).series))
    instances = client.search_for_instances(series_instance_uid=series_uid,
                                            fields=["ImagePositionPatient", "00201041"])
    truth = {f.ds.SOPInstanceUID: f.ds for s in world.alice_studies.values() for f in s.files}
    for item in instances:
        ds = truth[value(item, SOP_UID)]
        if "ImagePositionPatient" in ds:
            assert values(item, "00200032") == pytest.approx(
                [float(v) for v in ds.ImagePositionPatient])


SERIES_MATCHES = [
    {},
    {"Modality": "MR"},
    {"Modality": "CR", "PatientID": "77654033"},
    {"PatientName": "*eter*", "StudyDescription": "brain"},
    {"StudyDate": "20010101-", "Modality": "CR"},
    {"ModalitiesInStudy": "MR", "StudyTime": "05-"},
]


@pytest.mark.parametrize("match", SERIES_MATCHES)
def test_all_series_with_study_keys(world, match):
    found = world.client(world.alice).search_for_series(search_filters=match)
    files = expected_files(world, **match)
    expected = {ds.SeriesInstanceUID: ds for ds in files}
    assert sorted(value(s, SERIES_UID) for s in found) == sorted(expected)
    for item in found:
        ds = expected[value(item, SERIES_UID)]
        study = world.alice_studies[ds.StudyInstanceUID]
        assert value(item, STUDY_UID) == ds.StudyInstanceUID
        assert value(item, "00100010") == str(ds.PatientName)  # study attributes too
        assert value(item, "00080020") == ds.StudyDate
        assert value(item, "00201208") == len(study.files)
        assert value(item, "00080060") == ds.Modality
        assert value(item, "00201209") == len(study.series[ds.SeriesInstanceUID])
        assert value(item, "00081190").endswith(
            f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}")
    # Newest study first, then series number.
    order = [(value(i, "00080020") + value(i, "00080030"), -(value(i, "00200011") or 0))
             for i in found]
    assert order == sorted(order, reverse=True)


def test_all_series_by_uid_and_paging(world):
    client = world.client(world.alice)
    everything = [value(s, SERIES_UID) for s in client.search_for_series()]
    assert len(everything) == sum(len(s.series) for s in world.alice_studies.values())
    pages = [value(s, SERIES_UID) for o in range(0, len(everything), 3)
             for s in client.search_for_series(limit=3, offset=o)]
    assert pages == everything
    pair = "\\".join(everything[1:3])
    got = client.search_for_series(search_filters={"SeriesInstanceUID": pair})
    assert sorted(value(s, SERIES_UID) for s in got) == sorted(everything[1:3])
    crossed = client.search_for_series(search_filters={"SeriesInstanceUID": pair,
                                                       "PatientID": "no-such-id"})
    assert crossed == []
    # Bob's copy of Alice's CR instance: each sees their own series, never the other's.
    shared = world.shared.ds
    for user in (world.alice, world.bob):
        got = world.client(user).search_for_series(
            search_filters={"SeriesInstanceUID": shared.SeriesInstanceUID})
        assert [value(s, SERIES_UID) for s in got] == [shared.SeriesInstanceUID]
    bob_series = world.client(world.bob).search_for_series(
        search_filters={"SeriesInstanceUID": everything[0]})
    assert bob_series == [] or everything[0] == shared.SeriesInstanceUID


INSTANCE_MATCHES = [
    {},
    {"Modality": "CT"},
    {"PatientName": "*eter", "StudyDescription": "*MRA*"},
    {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.4"},
]


@pytest.mark.parametrize("match", INSTANCE_MATCHES)
def test_all_instances_with_study_and_series_keys(world, match):
    found = world.client(world.alice).search_for_instances(search_filters=match, limit=1000)
    truth = {f.ds.SOPInstanceUID: f.ds for s in world.alice_studies.values() for f in s.files}
    if "SOPClassUID" in match:
        expected = {u for u, ds in truth.items() if ds.SOPClassUID == match["SOPClassUID"]}
    else:
        expected = {ds.SOPInstanceUID for ds in expected_files(world, **match)}
    assert sorted(value(i, SOP_UID) for i in found) == sorted(expected)
    for item in found:
        ds = truth[value(item, SOP_UID)]
        assert value(item, STUDY_UID) == ds.StudyInstanceUID
        assert value(item, SERIES_UID) == ds.SeriesInstanceUID
        assert value(item, "00100020") == ds.PatientID
        assert value(item, "00080060") == ds.Modality
        assert value(item, "00080016") == ds.SOPClassUID
        assert value(item, "00200013") == ds.get("InstanceNumber")
        assert value(item, "00280010") == ds.get("Rows")
        assert value(item, "00081190").endswith(
            f"/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")


def test_all_instances_by_sop_uid_and_bob(world):
    client = world.client(world.alice)
    files = [f.ds for s in world.alice_studies.values() for f in s.files]
    wanted = "\\".join(ds.SOPInstanceUID for ds in files[:3])
    got = client.search_for_instances(search_filters={"SOPInstanceUID": wanted})
    assert sorted(value(i, SOP_UID) for i in got) == sorted(ds.SOPInstanceUID
                                                            for ds in files[:3])
    alice_only = next(ds for ds in files if ds.StudyInstanceUID not in world.bob_studies)
    assert world.client(world.bob).search_for_instances(
        search_filters={"SOPInstanceUID": alice_only.SOPInstanceUID}) == []
    bob_all = world.client(world.bob).search_for_instances()
    assert sorted(value(i, SOP_UID) for i in bob_all) == sorted(
        f.ds.SOPInstanceUID for f in world.bob_files)


def test_root_search_budget_says_when_it_stops(world, monkeypatch):
    """The domain search against the emulator: a read budget smaller than the series it
    must read stops the search and reports it (the entry point sends the Warning)."""
    fs, key = world.cloud.clients().firestore, world.cloud.settings().hash_key
    found, truncated = qido_root.search_all_instances(fs, key, world.alice.uid, [])
    assert len(found) == len(world.alice_files) and not truncated
    monkeypatch.setattr(qido_root, "READ_BUDGET", 3)
    found, truncated = qido_root.search_all_instances(fs, key, world.alice.uid, [])
    assert truncated and len(found) < len(world.alice_files)


def test_scan_time_budget_cuts_the_answer_short(world, monkeypatch):
    """Past SCAN_SECONDS the scan stops between pages and says so (a Warning on the wire),
    so an infix search over many studies still answers within the request's 60 s."""
    fs, key = world.cloud.clients().firestore, world.cloud.settings().hash_key
    query = [("PatientName", "*e*")]
    everything, truncated = qido.search_studies(fs, key, world.alice.uid, query)
    assert len(everything) == len(world.alice_studies) and not truncated
    monkeypatch.setattr(study_match, "PAGE", 2)
    monkeypatch.setattr(study_match, "SCAN_SECONDS", 0.0)
    found, truncated = qido.search_studies(fs, key, world.alice.uid, query)
    assert truncated and found == everything[:2]


def test_a_share_reaches_its_one_study_through_the_root_searches(world):
    """A share's headers scope /series and /instances to its study, as /studies."""
    from pacs import ids

    from tests.keys_helpers import open_share, share, share_headers
    from tests.privacy_helpers import ok

    mr = max(world.alice_studies.values(), key=lambda s: len(s.series))
    key = ids.study_key(world.cloud.settings().hash_key, world.alice.uid, mr.uid)
    created = share(world.cloud, world.alice, key)
    headers = share_headers(created["token"], ok(open_share(world.cloud, created["token"]))
                            ["view"])
    shared = DICOMwebClient(url=world.cloud.urls["dicomweb"], headers=headers)
    series = shared.search_for_series()
    assert sorted(value(s, SERIES_UID) for s in series) == sorted(mr.series)
    instances = shared.search_for_instances(limit=1000)
    assert sorted(value(i, SOP_UID) for i in instances) == sorted(
        f.ds.SOPInstanceUID for f in mr.files)
    other = next(u for u in world.alice_studies if u != mr.uid)
    assert shared.search_for_series(search_filters={"StudyInstanceUID": other}) == []
    assert shared.search_for_instances(search_filters={"PatientName": "*"},
                                       limit=1000) != []


def test_uid_searches_keep_to_the_named_studies(world):
    """SeriesInstanceUID / SOPInstanceUID (found by collection-group queries) together with
    a StudyInstanceUID, as a share's scope adds it: nothing of another study comes back."""
    client = world.client(world.alice)
    first, second = list(world.alice_studies.values())[:2]
    series_uid = next(iter(second.series))
    sop_uid = second.files[0].ds.SOPInstanceUID
    assert client.search_for_series(search_filters={
        "StudyInstanceUID": first.uid, "SeriesInstanceUID": series_uid}) == []
    assert client.search_for_instances(search_filters={
        "StudyInstanceUID": first.uid, "SOPInstanceUID": sop_uid}) == []
    got = client.search_for_instances(search_filters={
        "StudyInstanceUID": f"{first.uid}\\{second.uid}", "SOPInstanceUID": sop_uid})
    assert [value(i, SOP_UID) for i in got] == [sop_uid]
