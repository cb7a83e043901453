"""The resumable, versioned pass over the studies that the backfill jobs share
(``pacs.retention.study_pass``), against the Firestore emulator: a run stopped by its time
budget continues after the last page it finished, a pass that met a study it could not
handle is not done (the next run passes again), a finished pass costs one state read, and
a new version passes again. The jobs' own behaviour is tested with them
(``test_dicomweb_qido_legacy.py``: ``refresh_search_keys``;
``test_dicomweb_wado_lifecycle.py``: ``backfill_series_metadata``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pacs.paging import Budget
from pacs.retention import study_pass
from pacs.retention.context import JobContext

from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud


class Pages:
    """A clock that spends the budget after ``pages`` pages: the budget reads it once when
    made, the pass once after each page."""

    def __init__(self, pages: int | None) -> None:
        self.left = pages

    def __call__(self) -> float:
        if self.left is None:
            return 0.0
        self.left -= 1
        return 0.0 if self.left >= 0 else 1.0


def context(cloud: LocalCloud, owner: str, pages: int | None = None) -> JobContext:
    clock = Pages(pages)
    return JobContext(clients=cloud.clients(), now=datetime.now(UTC), page_size=2,
                      budget=Budget(0.5, clock=clock), scope=f"{owner}/")


@pytest.fixture
def owner(cloud: LocalCloud):
    """Five study documents of an owner of this test alone, by document id (deleted after,
    with the pass's state: other tests count what the project holds)."""
    uid = f"pass-{uuid.uuid4().hex[:12]}"
    fs = cloud.clients().firestore
    ids = sorted(f"{uid}-{n}" for n in range(5))
    for doc_id in ids:
        fs.collection("studies").document(doc_id).set({"owner": uid})
    yield uid, ids
    for doc_id in ids:
        fs.collection("studies").document(doc_id).delete()
    for name in ("test_pass", "test_pass_failing"):
        study_pass.state_ref(context(cloud, uid), name).delete()


def test_a_pass_continues_where_its_budget_stopped_it(cloud, owner):
    uid, ids = owner
    seen: list[str] = []

    first = context(cloud, uid, pages=1)
    study_pass.run(first, "test_pass", 1, lambda snap: seen.append(snap.id) or True)
    assert seen == ids[:2] and first.more

    second = context(cloud, uid)
    study_pass.run(second, "test_pass", 1, lambda snap: seen.append(snap.id) or True)
    assert seen == ids and not second.more and second.counts["studies_read"] == 3

    third = context(cloud, uid)
    study_pass.run(third, "test_pass", 1, lambda snap: seen.append(snap.id) or True)
    assert seen == ids and not third.counts  # done: the state document only

    newer = context(cloud, uid)
    study_pass.run(newer, "test_pass", 2, lambda snap: seen.append(snap.id) or True)
    assert seen == ids + ids  # a new version passes again


def test_a_pass_with_a_failure_is_not_done(cloud, owner):
    uid, ids = owner
    seen: list[str] = []

    study_pass.run(context(cloud, uid), "test_pass_failing", 1,
                   lambda snap: seen.append(snap.id) or snap.id != ids[3])
    study_pass.run(context(cloud, uid), "test_pass_failing", 1,
                   lambda snap: seen.append(snap.id) or True)
    study_pass.run(context(cloud, uid), "test_pass_failing", 1,
                   lambda snap: seen.append(snap.id) or True)
    assert seen == ids + ids  # the second pass again in full, the third not at all
    state = study_pass.state_ref(context(cloud, uid), "test_pass_failing").get().to_dict()
    assert state["done_version"] == 1 and state["cursor"] is None
