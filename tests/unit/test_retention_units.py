"""Pure parts of the retention jobs: the sorted merge of objects and documents, the time
budget, error codes, message decoding and the job registry against the schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pacs.errors import TransientError
from pacs.paging import Budget, prefix_end
from pacs.retention import reconcile, runner
from pacs.retention.context import JobContext, error_code
from pacs.retention.jobs import JOBS

from localcloud import config


@dataclass
class Blob:
    name: str


@dataclass
class Snap:
    object: str
    id: str = ""

    def to_dict(self):
        return {"object": self.object}


def merged(names: list[str], doc_objects: list[str]) -> list[tuple[str, bool, bool]]:
    out = reconcile.merge(iter(Blob(n) for n in names), iter(Snap(o) for o in doc_objects))
    return [(key, blob is not None, snap is not None) for key, blob, snap in out]


def test_merge_pairs_objects_with_their_documents_and_reports_each_orphan():
    # Arrange
    names = ["a/s/1.dcm", "a/s/2.dcm", "b/s/4.dcm"]
    docs = ["a/s/1.dcm", "a/s/3.dcm", "b/s/4.dcm", "c/s/5.dcm"]
    # Act / Assert
    assert merged(names, docs) == [
        ("a/s/1.dcm", True, True),
        ("a/s/2.dcm", True, False),   # object without document
        ("a/s/3.dcm", False, True),   # document without object
        ("b/s/4.dcm", True, True),
        ("c/s/5.dcm", False, True),
    ]


def test_merge_of_empty_sides():
    assert merged([], []) == []
    assert merged(["x"], []) == [("x", True, False)]
    assert merged([], ["x"]) == [("x", False, True)]


def test_a_second_document_of_one_object_is_not_called_an_orphan_object():
    result = merged(["a/1.dcm", "b/1.dcm"], ["a/1.dcm", "a/1.dcm", "b/1.dcm"])
    assert result == [("a/1.dcm", True, True), ("a/1.dcm", False, True),
                      ("b/1.dcm", True, True)]


def test_merge_is_lazy():
    # Millions of keys: the merge must pull from the streams as it goes, not read them.
    def endless(prefix):
        i = 0
        while True:
            yield Blob(f"{prefix}{i:012d}")
            i += 1

    out = reconcile.merge(endless("o"), iter([]))
    assert next(out)[0] == "o000000000000"


def test_prefix_end_bounds_every_name_under_the_prefix():
    assert "uid/zzzz" < prefix_end("uid/")
    assert "uid0" > prefix_end("uid/")


def test_budget_is_spent_after_its_seconds():
    now = [0.0]
    budget = Budget(10, clock=lambda: now[0])
    assert not budget.spent()
    now[0] = 10
    assert budget.spent()


def test_context_records_codes_once_and_marks_more_when_out_of_time():
    ctx = JobContext(clients=None, now=datetime.now(UTC), page_size=2,
                     budget=Budget(0))
    ctx.error("delete", TransientError("x"))
    ctx.error("delete", TransientError("y"), n=2)
    ctx.error("delete", KeyError("secret/object/name"))
    assert ctx.errors == ["delete:transient", "delete:KeyError"]
    assert ctx.counts["errors"] == 4
    assert ctx.out_of_time() and ctx.more


def test_error_codes_never_carry_the_error_text():
    assert error_code("step", ValueError("patient DOE^JOHN")) == "step:ValueError"


def test_job_name_of_a_message_body():
    assert runner.job_name({"job": "reconcile"}) == "reconcile"
    assert runner.job_name({}) == ""
    assert runner.job_name(["reconcile"]) == ""
    assert runner.job_name(None) == ""


def test_every_scheduled_job_is_registered_and_every_job_is_scheduled():
    scheduled = {job["data"]["job"] for job in config.schedule_definition()["jobs"]
                 if job["topic"] == "retention-jobs"}
    assert scheduled == set(JOBS)


def test_unknown_job_is_ignored_without_touching_anything():
    class Explodes:
        def __getattr__(self, name):
            raise AssertionError(f"touched {name}")

    assert runner.run(Explodes(), "drop_everything")["status"] == "unknown_job"
