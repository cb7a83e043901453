"""Search through the ``studies`` HTTP function over a few hundred generated studies of
several users: pages match the oracle, refusals (no token, unknown filters, bad dates,
limits and cursors), and one study with its series, the same 404 for anything not one's own.

The data set (the ``dataset`` fixture, one per module) and the oracle:
``tests/search_helpers.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from pacs import ids
from pacs.indexing import catalog
from pacs.studies import search

from tests.localcloud_fixture import LocalCloud, User
from tests.search_helpers import oracle

pytestmark = pytest.mark.localcloud


def http_pages(cloud: LocalCloud, user: User, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of a search, sent as our clients send it: filters in a POST body."""
    out, cursor = [], None
    while True:
        resp = requests.post(cloud.urls["studies"] + "/search", headers=user.headers(),
                             timeout=30,
                             json={**params, **({"cursor": cursor} if cursor else {})})
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
    assert requests.post(url + "search", json={"name": "smith"}, timeout=30).status_code == 401
    for params, code in (({"colour": "red"}, "unknown_filter"),
                         ({"date": "2024-02-30"}, "bad_date"), ({"name": ["a"]}, "bad_name"),
                         ({"limit": "zero"}, "bad_limit"), ({"cursor": "nope"}, "bad_cursor")):
        resp = requests.post(url + "search", json=params, headers=alice.headers(), timeout=30)
        assert resp.status_code == 400 and resp.json()["error"] == code, params
    for body in ("[1]", "not json", '"text"'):
        resp = requests.post(url + "search", data=body, headers={
            **alice.headers(), "Content-Type": "application/json"}, timeout=30)
        assert resp.status_code == 400 and resp.json()["error"] == "bad_body", body
    assert requests.get(url + "search", headers=alice.headers(), timeout=30).status_code == 400
    for params in ({"limit": "zero"}, {"cursor": "nope"}):  # paging alone still works by GET
        resp = requests.get(url, params=params, headers=alice.headers(), timeout=30)
        assert resp.status_code == 400 and resp.json()["error"].startswith("bad_"), params
    resp = requests.get(url, params={"limit": 5000}, headers=alice.headers(), timeout=30)
    assert resp.status_code == 200 and len(resp.json()["studies"]) == search.MAX_LIMIT
    assert resp.json()["next_cursor"]  # alice has more than the cap
    assert requests.post(url, headers=alice.headers(), timeout=30).status_code == 400
    # A Hosting rewrite prefix routes the same way.
    prefixed = requests.get(cloud.urls["studies"] + "/api/studies", params={"limit": 1},
                            headers=alice.headers(), timeout=30)
    assert prefixed.status_code == 200 and len(prefixed.json()["studies"]) == 1
    prefixed = requests.post(cloud.urls["studies"] + "/api/studies/search", json={"limit": 1},
                             headers=alice.headers(), timeout=30)
    assert prefixed.status_code == 200 and len(prefixed.json()["studies"]) == 1


def test_filters_in_the_url_are_refused(cloud, dataset):
    """Request URLs go to request logs: a patient name or ID in one is refused (before the
    token is even read), so no client of ours keeps sending them there."""
    alice = dataset.users["alice"]
    url = cloud.urls["studies"] + "/"
    for params in ({"name": "smith"}, {"patient_id": "PID-01", "limit": 5}, {"keyword": "x"}):
        for headers in (alice.headers(), {}):
            resp = requests.get(url, params=params, headers=headers, timeout=30)
            assert resp.status_code == 400, (params, resp.text)
            assert resp.json()["error"] == "filters_in_url"
            assert "smith" not in resp.text and "PID-01" not in resp.text


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
