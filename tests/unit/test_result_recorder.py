"""Batched result writes: every result is written exactly once, in batches bounded by size
and age, and nothing waits in the buffer after a flush."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pacs import results
from pacs.results import FileResult


class FakeBatch:
    def __init__(self, store: FakeFirestore) -> None:
        self.store, self.writes = store, []

    def set(self, ref: Any, doc: dict) -> None:
        self.writes.append((ref.path, doc))

    def commit(self) -> None:
        self.store.commits.append(self.writes)


class FakeRef:
    def __init__(self, path: str) -> None:
        self.path = path

    def collection(self, name: str) -> FakeRef:
        return FakeRef(f"{self.path}/{name}")

    def document(self, name: str) -> FakeRef:
        return FakeRef(f"{self.path}/{name}")


class FakeFirestore(FakeRef):
    """Records batch commits (the recorder's only calls)."""

    def __init__(self) -> None:
        super().__init__("")
        self.commits: list[list] = []

    def batch(self) -> FakeBatch:
        return FakeBatch(self)


def _result(i: int) -> FileResult:
    return FileResult(i, f"m{i}.dcm", results.STORED, size=10)


def test_results_are_committed_in_batches_of_the_given_size():
    fs, t = FakeFirestore(), [0.0]
    recorder = results.Recorder(fs, "uid", "up1", lambda: datetime.now(UTC), batch_size=10,
                                max_delay=60, clock=lambda: t[0])

    for i in range(25):
        recorder.add(_result(i))
    recorder.flush()

    assert [len(c) for c in fs.commits] == [10, 10, 5]
    paths = [p for c in fs.commits for p, _ in c]
    assert paths == [f"/uploads/up1/files/{i:06d}" for i in range(25)]
    assert all(doc["owner"] == "uid" and doc["upload_id"] == "up1" for c in fs.commits for _, doc in c)


def test_an_old_buffer_is_written_at_the_next_result():
    fs, t = FakeFirestore(), [0.0]
    recorder = results.Recorder(fs, "uid", "up1", lambda: datetime.now(UTC), batch_size=50,
                                max_delay=0.3, clock=lambda: t[0])

    recorder.add(_result(0))
    t[0] = 0.1
    recorder.add(_result(1))
    assert fs.commits == []
    t[0] = 0.5
    recorder.add(_result(2))

    assert [len(c) for c in fs.commits] == [3]


def test_flush_with_nothing_buffered_writes_nothing():
    fs = FakeFirestore()
    recorder = results.Recorder(fs, "uid", "up1", lambda: datetime.now(UTC))

    recorder.flush()

    assert fs.commits == []
