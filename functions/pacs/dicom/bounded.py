"""Bounded input for pydicom: a reader that never reads past a byte limit, and a budget on
the element headers a parse may read.

pydicom trusts declared lengths and reads as many elements as a file holds; the readers of
:mod:`pacs.dicom.header` hand it a :class:`BoundedReader` instead of the file, so a hostile
length or a flood of elements costs a bounded amount of memory and time.
"""

from __future__ import annotations

from typing import BinaryIO

#: Data elements (at all nesting levels) accepted in one header. pydicom holds roughly
#: 300 bytes per element; the reader also stops after 2 x this many element/item headers,
#: so a flood of empty elements peaks near 200 MiB RSS and 2-3 s (measured) instead of
#: gigabytes for a 64 MiB header. Enhanced multi-frame headers need ~35 per frame.
DEFAULT_MAX_ELEMENTS = 300_000


class BudgetExceeded(Exception):
    """Internal signal that a :class:`Budget` ran out (never escapes the public readers)."""


class Budget:
    """Counts 8-byte reads (one per element or item header) across every parse of a file."""

    def __init__(self, max_elements: int) -> None:
        # Legitimate elements cost one 8-byte tag read, plus one when the value is 8 bytes.
        self.left = 2 * max_elements
        self.exceeded = False

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            self.exceeded = True
            raise BudgetExceeded


class BoundedReader:
    """Seekable, read-only view of the first ``limit`` bytes of a file object.

    Reads never ask the underlying object for more than what is left below ``limit``
    (a declared length of 0xFFFFFFF0 costs nothing), and ``hit_limit`` records that the
    limit, not the end of the data, cut a read short.
    """

    def __init__(self, raw: BinaryIO, *, limit: int, size: int, budget: Budget) -> None:
        self._raw = raw
        self._limit = max(0, min(limit, size))
        self._size = size
        self._pos = 0
        self._budget = budget
        self.hit_limit = False
        self.partial_header = False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            pos = offset
        elif whence == 1:
            pos = self._pos + offset
        else:
            pos = self._limit + offset
        if pos < 0:
            raise OSError("negative seek position")
        self._pos = pos
        return pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = max(0, self._limit - self._pos)
        if n == 8:
            self._budget.spend()
        available = max(0, self._limit - self._pos)
        wanted = n
        if n > available:
            if self._limit < self._size:
                self.hit_limit = True
            n = available
        data = b""
        if n > 0:
            self._raw.seek(self._pos)
            data = self._raw.read(n)
            self._pos += len(data)
        if wanted == 8 and 0 < len(data) < 8:
            # pydicom silently drops a final element header cut short by the end of file.
            self.partial_header = True
        return data
