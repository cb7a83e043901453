"""Batched result writes: every result is written exactly once, in batches bounded by size
and age, and nothing waits in the buffer after a flush."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pacs import results
from pacs.results import FileResult


class Commits:
    """Records each batch the recorder commits (its only write: the real one is a
    transaction, tested against the emulator in tests/integration)."""

    def __init__(self) -> None:
        self.batches: list[list[FileResult]] = []

    def __call__(self, batch: list[FileResult], now: datetime) -> None:
        self.batches.append(list(batch))


def recorder_with(commits: Commits, **kwargs: Any) -> results.Recorder:
    return results.Recorder(None, b"k" * 32, "uid", "up1", lambda: datetime.now(UTC),
                            commit=commits, **kwargs)


def _result(i: int) -> FileResult:
    return FileResult(i, f"m{i}.dcm", results.STORED, size=10)


def test_results_are_committed_in_batches_of_the_given_size():
    commits, t = Commits(), [0.0]
    recorder = recorder_with(commits, batch_size=10, max_delay=60, clock=lambda: t[0])

    for i in range(25):
        recorder.add(_result(i))
    recorder.flush()

    assert [len(c) for c in commits.batches] == [10, 10, 5]
    assert [r.index for c in commits.batches for r in c] == list(range(25))


def test_an_old_buffer_is_written_at_the_next_result():
    commits, t = Commits(), [0.0]
    recorder = recorder_with(commits, batch_size=50, max_delay=0.3, clock=lambda: t[0])

    recorder.add(_result(0))
    t[0] = 0.1
    recorder.add(_result(1))
    assert commits.batches == []
    t[0] = 0.5
    recorder.add(_result(2))

    assert [len(c) for c in commits.batches] == [3]


def test_flush_with_nothing_buffered_writes_nothing():
    commits = Commits()
    recorder = recorder_with(commits)

    recorder.flush()

    assert commits.batches == []
