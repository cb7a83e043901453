"""Child processes: each started in its own session (so its process group is its pid),
logged to one folder, and stopped by process group so no grandchild is left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Children of a test or bench session die with it, even when it is killed (SIGKILL, OOM):
# the kernel sends them SIGTERM when their parent exits. ``make up`` leaves this off, since
# its children must outlive the command that started them.
_tie_to_parent = False


def tie_children_to_this_process() -> None:
    """Make every child spawned from now on receive SIGTERM when this process dies."""
    global _tie_to_parent
    _tie_to_parent = True


def _tied(argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` so the kernel sends it SIGTERM when its parent dies. util-linux's
    ``setpriv`` sets PR_SET_PDEATHSIG and execs, so no Python runs between fork and exec
    (a ``preexec_fn`` would fork a process that has gRPC threads, which can abort)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path,
          cwd: Path | None = None) -> Child:
    """Start ``argv`` detached in a new session, stdout and stderr to ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        _tied(argv) if _tie_to_parent else list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True,
    )
    log.close()
    return Child(name, process, log_path)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_groups(pgids: Sequence[int], timeout: float = 8.0) -> None:
    """SIGTERM every process group, wait, then SIGKILL what is left."""
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(group_alive(p) for p in pgids):
        time.sleep(0.05)
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Reap our own children so none lingers as a zombie.
    for pgid in pgids:
        try:
            os.waitpid(pgid, os.WNOHANG)
        except ChildProcessError:
            pass


def _group_status_kib(pgid: int, field: str) -> list[int]:
    """One ``/proc/<pid>/status`` field (in KiB) of every process in a process group."""
    values = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith(field + ":"):
                    values.append(int(line.split()[1]))
        except (OSError, IndexError, ValueError):
            continue
    return values


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of every process in a process group (Linux /proc)."""
    return sum(_group_status_kib(pgid, "VmRSS")) * 1024


def group_peak_rss_bytes(pgid: int) -> int:
    """The highest peak resident memory (VmHWM) of any process in a process group."""
    return max(_group_status_kib(pgid, "VmHWM"), default=0) * 1024


def http_answers(url: str, timeout: float = 0.5) -> bool:
    """True when ``url`` answers HTTP at all (any status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               child: Child | None = None) -> None:
    """Poll ``check`` until true; fail early if ``child`` exits, with its log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if child is not None and child.process.poll() is not None:
            tail = child.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited with {child.process.returncode}:\n{tail}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s (log: {child.log_path if child else '-'})")
