"""Bounded reading of large collections and buckets: pages of Firestore documents and of
Storage objects, and a time budget for jobs that walk them.

Nothing here loads a whole collection or bucket: a query is read ``page_size`` documents at
a time, continuing after the last document of the previous page (a cursor on the query's
order, so deleting what a page held does not make the next page skip or repeat anything);
a bucket listing is read one page of ``page_size`` objects at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


def query_pages(query: Any, page_size: int) -> Iterator[list[Any]]:
    """Pages of a Firestore query's snapshots, ``page_size`` at a time.

    Parameters
    ----------
    query : google.cloud.firestore_v1.query.Query
        An ordered query. A projection (``select``) must include the fields it is ordered
        by, since each page continues after the previous page's last snapshot.
    page_size : int

    Yields
    ------
    list of DocumentSnapshot
        Never empty; the last page may be shorter than ``page_size``.
    """
    last = None
    while True:
        page_query = query.limit(page_size)
        if last is not None:
            page_query = page_query.start_after(last)
        snaps = list(page_query.stream())
        if not snaps:
            return
        yield snaps
        if len(snaps) < page_size:
            return
        last = snaps[-1]


def blob_pages(storage: Any, bucket: str, page_size: int, prefix: str = "",
               start_offset: str | None = None) -> Iterator[list[Any]]:
    """Pages of a bucket listing (name order), ``page_size`` objects at a time.

    Parameters
    ----------
    storage : google.cloud.storage.Client
    bucket : str
    page_size : int
    prefix : str, optional
        Only names starting with this.
    start_offset : str, optional
        Only names from this one on (inclusive), as the listing API's ``startOffset``.

    Yields
    ------
    list of Blob
        Possibly empty pages are skipped.
    """
    kwargs: dict[str, Any] = {"page_size": page_size}
    if prefix:
        kwargs["prefix"] = prefix
    if start_offset:
        kwargs["start_offset"] = start_offset
    for page in storage.list_blobs(bucket, **kwargs).pages:
        blobs = list(page)
        if blobs:
            yield blobs


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix`` (for a range
    query ``prefix <= x < prefix_end(prefix)``)."""
    return prefix + "\U0010ffff"


@dataclass
class Budget:
    """A job's time budget: jobs stop between pages once it is spent, and say so.

    Attributes
    ----------
    seconds : float
        How long the job may run.
    clock : callable
        Monotonic clock (injected in tests).
    """

    seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def spent(self) -> bool:
        return self.clock() - self.started >= self.seconds
