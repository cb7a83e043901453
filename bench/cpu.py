"""CPU time of process trees, read from Linux ``/proc``: what each of our processes (every
function process, the router) and Orthanc spend per instance over a workload's window.

A process's CPU is ``utime + stime`` of ``/proc/<pid>/stat`` (all its threads), plus
``cutime + cstime`` (its children that exited and were waited for). A tree's CPU is that
sum over the root and every live descendant, so a worker process that a server forks,
and one that exits during the window, are both counted. The difference of two readings is
the CPU the tree spent between them, whatever else the machine was doing (wall time on a
loaded machine says little; CPU time is what a cloud bills).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces
    and parentheses), or None when the process is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def _parents() -> dict[int, int]:
    """Every live process's parent pid."""
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    return parents


def tree(root: int, parents: Mapping[int, int] | None = None) -> list[int]:
    """``root`` and every live descendant of it (empty when ``root`` is gone)."""
    parents = _parents() if parents is None else parents
    if root not in parents:
        return []
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of one process: its threads and its waited-for children (0 when gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime ... (proc(5), fields 14-17).
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


def tree_cpu_seconds(root: int, parents: Mapping[int, int] | None = None) -> float:
    """CPU seconds of ``root``'s process tree so far (see the module docstring)."""
    return sum(process_cpu_seconds(pid) for pid in tree(root, parents))


def snapshot(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process tree, read together."""
    parents = _parents()
    return {name: tree_cpu_seconds(pid, parents) for name, pid in roots.items()}


def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each tree spent between two snapshots."""
    return {name: max(0.0, after.get(name, 0.0) - before[name]) for name in before}


def per_instance_ms(seconds: Mapping[str, float], instances: int) -> dict[str, float]:
    """CPU milliseconds per instance of each tree, and their ``sum``."""
    out = {name: value * 1000 / instances for name, value in sorted(seconds.items())}
    out["sum"] = sum(out.values())
    return out
