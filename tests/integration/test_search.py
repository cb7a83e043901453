"""Search over a few hundred generated studies of several users: every filter and their
combinations, paging, isolation between users; through the domain function, the ``studies``
HTTP function, and the Firestore REST API under the security rules (a web client's path).

The studies are written with the same document builders ingest uses
(``catalog.study_document``, ``search_keys.with_modalities`` as settle does), and the
expected answers come from a separate, plain re-implementation of the filters below.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from google.cloud.firestore_v1.types import StructuredQuery
from pacs import ids
from pacs.indexing import catalog, search_keys
from pacs.studies import filters as search_filters
from pacs.studies import query as search_query
from pacs.studies import search

from tests.localcloud_fixture import LocalCloud, User

pytestmark = pytest.mark.localcloud

NAMES = ["Müller^Jürgen", "Mueller^Anna", "Smith^John^^Dr.", "Smithson^Jane", "O'Brien^Seán",
         "García Márquez^José", "Nguyễn^Văn An", "山田^太郎=ヤマダ^タロウ", "Doe^Jane",
         "Øster^Åse", "Jürgens^Paul", "Ng^Li", "", "MÜLLER-LÜDENSCHEIDT^Hans"]
DESCRIPTIONS = ["CT Chest w/o contrast", "MR Brain", "Abdomen US", "Chest X-Ray",
                "PET-CT whole body", "Knee MRI left", "", None, "CHEST abdomen pelvis"]
MODALITIES = ["CT", "MR", "US", "CR", "PT", "SR"]


@dataclass
class Study:
    key: str
    uid: str
    fields: dict[str, Any]
    modalities: list[str]


@dataclass
class Dataset:
    users: dict[str, User]
    studies: list[Study] = field(default_factory=list)

    def of(self, name: str) -> list[Study]:
        uid = self.users[name].uid
        return [s for s in self.studies if s.uid == uid]


# --- The oracle: the filters re-implemented plainly --------------------------------------

def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", kept).casefold()


def _words(text: str | None) -> list[str]:
    return [w for w in re.split(r"[\W_]+", _fold(text or "")) if w]


def _date(value: str) -> str:
    return value.replace("-", "")


def oracle(dataset: Dataset, uid: str, filters: dict[str, str]) -> list[str]:
    """Study keys of ``uid`` matching ``filters``, newest first (ties by key, descending)."""
    out = []
    for s in dataset.studies:
        f = s.fields
        if s.uid != uid:
            continue
        if "name" in filters:
            tokens = _words(f["PatientName"])
            if not all(any(t.startswith(w) for t in tokens) for w in _words(filters["name"])):
                continue
        if "patient_id" in filters and _fold(f["PatientID"]) != _fold(filters["patient_id"]):
            continue
        if "accession" in filters and _fold(f["AccessionNumber"]) != _fold(filters["accession"]):
            continue
        if "modality" in filters and filters["modality"].upper() not in s.modalities:
            continue
        if "keyword" in filters:
            have = {w for w in _words(f["StudyDescription"]) if len(w) > 1}
            if not {w for w in _words(filters["keyword"]) if len(w) > 1} <= have:
                continue
        low, high = filters.get("date_from"), filters.get("date_to")
        if "date" in filters:
            dicom_range = re.fullmatch(r"(\d{8})?-(\d{8})?", filters["date"])
            low, high = dicom_range.groups() if dicom_range else (filters["date"],) * 2
        if low or high:
            if not f["StudyDate"]:
                continue
            if low and f["StudyDate"] < _date(low) or high and f["StudyDate"] > _date(high):
                continue
        out.append(s)
    def sort(s: Study) -> tuple[str, str]:
        date, time = s.fields["StudyDate"], s.fields["StudyTime"]
        return (date + time.ljust(6, "0") if date else "00000000"), s.key

    return [s.key for s in sorted(out, key=sort, reverse=True)]


# --- Seeding ------------------------------------------------------------------------------

def _fields(rng: random.Random, n: int, user_index: int) -> tuple[dict[str, Any], list[str]]:
    undated = rng.random() < 0.1
    date = "" if undated else f"{rng.randint(2015, 2024)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    if n % 17 == 0 and not undated:
        date = "20200615"  # several studies on one date: ties broken by key
    time = "" if rng.random() < 0.3 else f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}00"
    name_index = rng.randrange(len(NAMES))
    mods = sorted(rng.sample(MODALITIES, rng.randint(1, 3))) if rng.random() > 0.05 else []
    fields = {
        "PatientName": NAMES[name_index],
        # The same patient ids for every user: a search must still show only the caller's.
        "PatientID": f"pid-{name_index:02d}" if name_index % 3 else f"PÄT{name_index}",
        "PatientBirthDate": "19700101", "PatientSex": rng.choice(["F", "M", "O"]),
        "StudyInstanceUID": f"1.2.826.0.1.{user_index}.{n}",
        "StudyDate": date, "StudyTime": time,
        "AccessionNumber": f"ACC{n % 40:04d}",
        "StudyID": str(n), "StudyDescription": rng.choice(DESCRIPTIONS),
        "ReferringPhysicianName": "", "ModalitiesInStudy": mods,
    }
    return fields, mods


def seed(cloud: LocalCloud, user: User, user_index: int, count: int,
         rng: random.Random) -> list[Study]:
    """Write ``count`` studies of ``user`` as ingest and settle would leave them."""
    fs = cloud.clients().firestore
    key = cloud.settings().hash_key
    now = datetime.now(UTC)
    studies, batch = [], fs.batch()
    for n in range(count):
        fields, mods = _fields(rng, n, user_index)
        study_key = ids.study_key(key, user.uid, fields["StudyInstanceUID"])
        doc = catalog.study_document(fields, user.uid, now)
        series_key = ids.series_key(key, user.uid, fields["StudyInstanceUID"] + ".1")
        doc.update(modalities=mods, ModalitiesInStudy=mods, series_count=len(mods),
                   instance_count=3 * len(mods), total_bytes=1000 * len(mods),
                   search=search_keys.with_modalities(doc["search"], mods),
                   preview={"status": "ready", "generation": "1", "instance_key": "i" * 32,
                            "object": ids.preview_object(user.uid, study_key, series_key)})
        batch.set(catalog.study_ref(fs, study_key), doc)
        studies.append(Study(study_key, user.uid, fields, mods))
        if n % 100 == 99:
            batch.commit()
            batch = fs.batch()
    batch.commit()
    return studies


@pytest.fixture(scope="module")
def dataset(cloud: LocalCloud) -> Dataset:
    rng = random.Random(20240131)
    users = {name: cloud.create_user() for name in ("alice", "bob", "carol", "dave")}
    data = Dataset(users)
    for index, (name, count) in enumerate((("alice", 210), ("bob", 120), ("carol", 60))):
        data.studies += seed(cloud, users[name], index, count, rng)
    return data


def pages(cloud: LocalCloud, uid: str, filters: dict[str, str], limit: int
          ) -> list[list[dict[str, Any]]]:
    """Every page of a search through the domain function."""
    fs = cloud.clients().firestore
    out, cursor = [], None
    while True:
        page = search.search_studies(fs, uid, filters, cursor, limit)
        out.append(page["studies"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out
        assert len(out) <= 1000, "paging does not end"


def run(cloud: LocalCloud, uid: str, filters: dict[str, str], limit: int = 50) -> list[str]:
    return [s["id"] for page in pages(cloud, uid, filters, limit) for s in page]


# --- Through the domain function ----------------------------------------------------------

FIXED_CASES = [
    {},
    {"name": "mul"}, {"name": "JUR"}, {"name": "jürg"}, {"name": "Müller^Jürgen"},
    {"name": "smi"}, {"name": "smith"}, {"name": "o"}, {"name": "brien"}, {"name": "jose"},
    {"name": "山"}, {"name": "ヤマダ"}, {"name": "nguyen van"}, {"name": "ØSTER"},
    {"name": "ludenscheid"}, {"name": "muller-ludenscheidt"}, {"name": "zzz"},
    {"name": "abcdefghijklmnopqrstuvwxyz"},
    {"patient_id": "pid-01"}, {"patient_id": "PID-01"}, {"patient_id": "pät0"},
    {"date": "20200615"}, {"date": "2020-06-15"}, {"date_from": "20220101"},
    {"date_to": "20161231"}, {"date_from": "20170101", "date_to": "20191231"},
    {"date": "20230101-"}, {"date": "-20151231"},
    {"modality": "CT"}, {"modality": "sr"}, {"modality": "XA"},
    {"accession": "ACC0007"}, {"accession": "acc0007"},
    {"keyword": "chest"}, {"keyword": "CHEST contrast"}, {"keyword": "brain"},
    {"keyword": "x-ray"},
    {"name": "mul", "modality": "CT"}, {"name": "smi", "keyword": "chest"},
    {"modality": "MR", "keyword": "brain"}, {"name": "j", "modality": "CT", "keyword": "chest"},
    {"patient_id": "pid-01", "date_from": "20180101", "date_to": "20221231"},
    {"accession": "ACC0003", "modality": "US"}, {"name": "doe", "patient_id": "pid-08"},
    {"name": "mü", "date_from": "20200101"}, {"modality": "CT", "date_to": "20191231"},
    {"name": "jürgen müller", "keyword": "chest", "modality": "CT", "date_from": "20150101"},
]


@pytest.mark.parametrize("filters", FIXED_CASES, ids=lambda f: json.dumps(f, ensure_ascii=False))
def test_each_filter_and_combinations_match_the_oracle(cloud, dataset, filters):
    for name in ("alice", "bob", "dave"):
        uid = dataset.users[name].uid
        assert run(cloud, uid, filters, limit=40) == oracle(dataset, uid, filters), name


def test_accent_and_case_insensitive_name_prefix(cloud, dataset):
    uid = dataset.users["alice"].uid
    mullers = {s.key for s in dataset.of("alice") if s.fields["PatientName"] == "Müller^Jürgen"}
    assert mullers
    for typed in ("mul", "JUR", "jürg", "MÜLLER", "Jurgen"):
        assert mullers <= set(run(cloud, uid, {"name": typed})), typed


def _filters_of(study: Study, rng: random.Random) -> dict[str, dict[str, str]]:
    """Every filter that ``study`` meets, one value each."""
    f = study.fields
    tokens = _words(f["PatientName"])
    words = [w for w in _words(f["StudyDescription"]) if len(w) > 1]
    out: dict[str, dict[str, str]] = {"patient_id": {"patient_id": f["PatientID"].lower()},
                                      "accession": {"accession": f["AccessionNumber"]}}
    if tokens:
        token = rng.choice(tokens)
        out["name"] = {"name": token[:rng.randint(1, len(token))].upper()}
    if f["StudyDate"]:
        out["date"] = rng.choice([{"date": f["StudyDate"]},
                                  {"date_from": f["StudyDate"][:4] + "0101"},
                                  {"date_to": f["StudyDate"][:4] + "1231"},
                                  {"date_from": f["StudyDate"], "date_to": "20241231"}])
    if study.modalities:
        out["modality"] = {"modality": rng.choice(study.modalities).lower()}
    if words:
        out["keyword"] = {"keyword": rng.choice(words)}
    return out


def test_every_combination_of_filters_of_real_studies(cloud, dataset):
    rng = random.Random(7)
    candidates = [s for s in dataset.of("alice")
                  if s.fields["PatientName"] and s.fields["StudyDate"] and s.modalities
                  and s.fields["StudyDescription"]]
    uid = dataset.users["alice"].uid
    checked = 0
    for study in rng.sample(candidates, 3):
        available = _filters_of(study, rng)
        for size in range(1, len(available) + 1):
            for names in itertools.combinations(sorted(available), size):
                filters = {k: v for n in names for k, v in available[n].items()}
                got = run(cloud, uid, filters, limit=200)
                assert study.key in got, filters
                assert got == oracle(dataset, uid, filters), filters
                checked += 1
    assert checked == 3 * 63


@pytest.mark.parametrize("filters", [{}, {"modality": "CT"}, {"name": "mül jür"},
                                     {"name": "j", "modality": "CT", "keyword": "chest"},
                                     {"date_from": "20180101"}])
def test_paging_has_no_gaps_or_repeats(cloud, dataset, filters):
    uid = dataset.users["alice"].uid
    expected = oracle(dataset, uid, filters)
    for limit in ((1, 7, 200) if len(expected) < 40 else (4, 13, 200)):
        got = pages(cloud, uid, filters, limit)
        flat = [s["id"] for page in got for s in page]
        assert flat == expected, limit
        assert all(len(page) <= limit for page in got)
        if not search_filters.Filters.parse(filters).needs_check:
            assert all(len(page) == limit for page in got[:-1])


def test_paging_within_the_scan_budget_still_finds_everything(cloud, dataset, monkeypatch):
    # A filter checked on candidates reads a bounded number of documents per page; pages may
    # be short then, but together they hold every match exactly once.
    monkeypatch.setattr(search, "SCAN_BUDGET", 15)
    uid = dataset.users["alice"].uid
    filters = {"name": "jü mü"}
    got = pages(cloud, uid, filters, 5)
    assert [s["id"] for page in got for s in page] == oracle(dataset, uid, filters)
    assert len(got) > 2


def test_results_carry_the_list_fields_counts_and_preview(cloud, dataset):
    study = dataset.of("carol")[0]
    [row] = [r for r in run_rows(cloud, study.uid, {}) if r["id"] == study.key]
    assert row["PatientName"] == study.fields["PatientName"]
    assert row["StudyDate"] == study.fields["StudyDate"]
    assert row["modalities"] == study.modalities
    assert row["series_count"] == len(study.modalities)
    assert row["instance_count"] == 3 * len(study.modalities)
    assert row["preview"]["object"].startswith(f"previews/{study.uid}/{study.key}/")
    assert "search" not in row and "owner" not in row
    datetime.fromisoformat(row["created_at"])


def run_rows(cloud: LocalCloud, uid: str, filters: dict[str, str]) -> list[dict[str, Any]]:
    return [s for page in pages(cloud, uid, filters, 200) for s in page]


def test_another_users_studies_never_appear(cloud, dataset):
    everyone = {s.key: s.uid for s in dataset.studies}
    for name in ("alice", "bob", "carol", "dave"):
        uid = dataset.users[name].uid
        for filters in ({}, {"patient_id": "pid-01"}, {"accession": "ACC0001"}, {"name": "m"}):
            got = run(cloud, uid, filters, limit=200)
            assert all(everyone.get(key) == uid for key in got)
    assert run(cloud, dataset.users["dave"].uid, {}) == []
    # A cursor is a position, not a key to someone else's data.
    bob_first = run(cloud, dataset.users["bob"].uid, {})[0]
    sort = next(s for s in dataset.studies if s.key == bob_first).fields["StudyDate"] or "0" * 8
    page = search.search_studies(cloud.clients().firestore, dataset.users["alice"].uid, {},
                                 search_query.encode_cursor(sort, bob_first), 200)
    assert all(everyone[r["id"]] == dataset.users["alice"].uid for r in page["studies"])


# --- Through the HTTP function ------------------------------------------------------------

def http_pages(cloud: LocalCloud, user: User, params: dict[str, Any]) -> list[dict[str, Any]]:
    out, cursor = [], None
    while True:
        resp = requests.get(cloud.urls["studies"] + "/", headers=user.headers(), timeout=30,
                            params={**params, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return out


@pytest.mark.parametrize("filters", [{}, {"name": "JÜRG"}, {"modality": "ct", "keyword": "chest"},
                                     {"date": "20170101-20191231"}, {"patient_id": "PID-01"},
                                     {"name": "smi", "modality": "CT", "keyword": "chest"}])
def test_http_search_pages_match_the_domain_function(cloud, dataset, filters):
    alice = dataset.users["alice"]
    got = http_pages(cloud, alice, {**filters, "limit": 9})
    assert [s["id"] for body in got for s in body["studies"]] == oracle(dataset, alice.uid,
                                                                        filters)


def test_http_search_refusals(cloud, dataset):
    alice = dataset.users["alice"]
    url = cloud.urls["studies"] + "/"
    assert requests.get(url, timeout=30).status_code == 401
    for params, code in (({"colour": "red"}, "unknown_filter"), ({"date": "2024-02-30"}, "bad_date"),
                         ({"limit": "zero"}, "bad_limit"), ({"cursor": "nope"}, "bad_cursor")):
        resp = requests.get(url, params=params, headers=alice.headers(), timeout=30)
        assert resp.status_code == 400 and resp.json()["error"] == code, params
    resp = requests.get(url, params={"limit": 5000}, headers=alice.headers(), timeout=30)
    assert resp.status_code == 200 and len(resp.json()["studies"]) == search.MAX_LIMIT
    assert resp.json()["next_cursor"]  # alice has more than the cap
    assert requests.post(url, headers=alice.headers(), timeout=30).status_code == 400
    # A Hosting rewrite prefix routes the same way.
    prefixed = requests.get(cloud.urls["studies"] + "/api/studies", params={"limit": 1},
                            headers=alice.headers(), timeout=30)
    assert prefixed.status_code == 200 and len(prefixed.json()["studies"]) == 1


def test_http_get_one_study_with_its_series(cloud, dataset):
    alice, bob = dataset.users["alice"], dataset.users["bob"]
    study = dataset.of("alice")[5]
    fs = cloud.clients().firestore
    now = datetime.now(UTC)
    for number, modality in ((2, "MR"), (1, "CT"), (None, "SR")):
        fields = {"SeriesInstanceUID": f"{study.fields['StudyInstanceUID']}.{number}",
                  "Modality": modality, "SeriesNumber": number}
        key = ids.series_key(cloud.settings().hash_key, alice.uid, fields["SeriesInstanceUID"])
        catalog.series_ref(fs, study.key, key).set(
            catalog.series_document(fields, alice.uid, study.key, now))
    url = f"{cloud.urls['studies']}/{study.key}"
    resp = requests.get(url, headers=alice.headers(), timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["study"]["id"] == study.key
    assert body["study"]["StudyInstanceUID"] == study.fields["StudyInstanceUID"]
    assert [s["SeriesNumber"] for s in body["series"]] == [1, 2, None]
    assert all(s["id"] and s["preview"] == {"status": "pending"} for s in body["series"])
    # Someone else's study, an unknown one and a malformed id: the same 404.
    answers = [requests.get(u, headers=h, timeout=30) for u, h in (
        (url, bob.headers()), (f"{cloud.urls['studies']}/{'0' * 32}", alice.headers()),
        (f"{cloud.urls['studies']}/..%2Fx", alice.headers()))]
    assert [r.status_code for r in answers] == [404, 404, 404]
    assert len({json.dumps(r.json()) for r in answers}) == 1


# --- Through the Firestore REST API, as a web client under the rules ----------------------

def rest_query(cloud: LocalCloud, query: Any, token: str | None) -> requests.Response:
    structured = json.loads(StructuredQuery.to_json(query._to_protobuf(),
                                                    use_integers_for_enums=False))
    return cloud.firestore_query("", structured, token)


@pytest.mark.parametrize("filters", [{}, {"name": "mul", "modality": "CT"},
                                     {"patient_id": "pid-01", "date_from": "20180101"},
                                     {"accession": "ACC0002", "keyword": "chest"},
                                     {"date": "-20191231", "modality": "MR"}])
def test_web_client_runs_the_same_query_under_the_rules(cloud, dataset, filters):
    alice, bob = dataset.users["alice"], dataset.users["bob"]
    client = cloud.clients().firestore
    query = search_query.build_query(client, alice.uid, filters).limit(30)
    resp = rest_query(cloud, query, alice.id_token)
    assert resp.status_code == 200, resp.text
    got = [row["document"]["name"].rsplit("/", 1)[1] for row in resp.json() if "document" in row]
    assert got == oracle(dataset, alice.uid, filters)[:30]
    # The same query as someone else, or with no owner filter at all, is refused.
    assert rest_query(cloud, query, bob.id_token).status_code == 403
    assert rest_query(cloud, query, None).status_code == 403
    unowned = client.collection("studies").order_by("search.sort").limit(5)
    assert rest_query(cloud, unowned, alice.id_token).status_code == 403
