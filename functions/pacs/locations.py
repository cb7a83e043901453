"""Deleting what one location holds (an erasure's registry entry, a study deletion's step):
the failure both report, and objects deleted in parallel with a missing one counted as done
(a retry after a crash finds part of its work already gone).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

DELETE_WORKERS = 16


class LocationFailed(Exception):
    """Some items of a location could not be deleted (after the others were tried)."""


def delete_objects(bucket: Any, names: Iterable[str], workers: int = DELETE_WORKERS) -> int:
    """Delete objects in parallel; a missing one counts as done. Returns how many were
    deleted; raises :class:`LocationFailed` after trying all when any failed."""
    from google.api_core.exceptions import NotFound

    def one(name: str) -> tuple[int, str | None]:
        try:
            bucket.blob(name).delete()
            return 1, None
        except NotFound:
            return 0, None
        except Exception as err:  # noqa: BLE001 - reported by type below; the rest go on
            return 0, type(err).__name__

    names = list(names)
    if not names:
        return 0
    with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
        outcomes = list(pool.map(one, names))
    errors = [e for _, e in outcomes if e]
    if errors:
        raise LocationFailed(f"{len(errors)} objects not deleted ({errors[0]})")
    return sum(n for n, _ in outcomes)
