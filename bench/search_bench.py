"""Search latency over 10,000 studies of one user, through the ``studies`` HTTP function
(token check with check_revoked, query, page of 50), for the same kinds of searches the
Orthanc anchor runs with /tools/find."""

from __future__ import annotations

import random
import statistics
import time

import requests

from tests.localcloud_fixture import LocalCloud
from tests.search_helpers import seed

QUERIES = [{"name": "a"}, {"modality": "CT"}, {"date_from": "20000101", "date_to": "20301231"},
           {"name": "m", "modality": "MR"}, {}]


def _bare_query_ms(cloud: LocalCloud, uid: str, rounds: int) -> float:
    """The same queries straight against the emulator (no function, no token check): what
    the local Firestore emulator itself costs, since it scans instead of using indexes."""
    from pacs.studies import query as search_query

    fs = cloud.clients().firestore
    times = []
    for _ in range(rounds):
        for query in QUERIES:
            started = time.perf_counter()
            search_query.build_query(fs, uid, query).limit(50).get()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run(cloud: LocalCloud, studies: int = 10_000, rounds: int = 3) -> dict:
    user = cloud.create_user()
    rng = random.Random(7)
    for start in range(0, studies, 1000):
        seed(cloud, user, 90 + start // 1000, min(1000, studies - start), rng)
    url = cloud.urls["studies"] + "/"
    session = requests.Session()
    times = []
    for _ in range(rounds):
        for query in QUERIES:
            started = time.perf_counter()
            resp = session.get(url, params={**query, "limit": 50}, headers=user.headers(), timeout=60)
            times.append((time.perf_counter() - started) * 1000)
            resp.raise_for_status()
    times.sort()
    return {"studies": studies, "p50_ms": statistics.median(times),
            "p95_ms": times[max(0, int(len(times) * 0.95) - 1)],
            "emulator_query_p50_ms": _bare_query_ms(cloud, user.uid, rounds)}
