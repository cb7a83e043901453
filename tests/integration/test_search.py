"""Search through the domain function (``pacs.studies.search``) over a few hundred
generated studies of several users: every filter and their combinations against the
oracle, paging without gaps or repeats (also within the scan budget), the list fields of a
result, and isolation between users.

The data set (the ``dataset`` fixture, one per module) and the oracle:
``tests/search_helpers.py``.
"""

from __future__ import annotations

import itertools
import json
import random
from datetime import datetime
from typing import Any

import pytest
from pacs.studies import filters as search_filters
from pacs.studies import query as search_query
from pacs.studies import search

from tests.localcloud_fixture import LocalCloud
from tests.search_helpers import (
    Study,
    folded_words,
    oracle,
)

pytestmark = pytest.mark.localcloud


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
    tokens = folded_words(f["PatientName"])
    words = [w for w in folded_words(f["StudyDescription"]) if len(w) > 1]
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
