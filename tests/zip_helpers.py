"""Helpers of the ZIP tests (``tests/unit/test_zip_*.py``): the limits they run under,
inspecting an archive file, the members' kinds, and the peak memory of an action. The
hostile archives themselves are made by ``tests/hostile.py``.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

from pacs.settings import Settings
from pacs.zip.safety import MemberInfo, ZipLimits, inspect_archive

MIB = 1024**2
DEFAULTS = ZipLimits.from_settings(Settings.from_env({}))
LOOSE = ZipLimits(max_members=10**6, max_member_bytes=2**40, max_total_bytes=2**50,
                  max_ratio=10**9)


def inspect_file(path: Path, limits: ZipLimits = DEFAULTS) -> list[MemberInfo]:
    with path.open("rb") as fp:
        return inspect_archive(fp, limits)


def member_kinds(path: Path) -> list[tuple[str, str]]:
    return [(m.display_name, m.kind) for m in inspect_file(path)]


def peak_bytes(action: Callable[[], object]) -> int:
    """Peak traced allocation (Python and zlib) while ``action`` runs."""
    tracemalloc.start()
    try:
        action()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak
