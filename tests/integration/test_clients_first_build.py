"""The first events reach a function process together, on several threads: the process's
clients are built once, not once per thread (two builds at once collided in
``firebase_admin.initialize_app``, a 500 and a redelivery for each loser)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.localcloud

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

SCRIPT = textwrap.dedent("""
    import threading
    from pacs.clients import default_clients
    barrier, got, errors = threading.Barrier(8), [], []
    def first_event():
        barrier.wait()
        try:
            got.append(default_clients())
        except Exception as err:
            errors.append(type(err).__name__)
    threads = [threading.Thread(target=first_event) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(len(errors), len({id(c) for c in got}))
""")


def test_clients_are_built_once_when_the_first_events_arrive_together(cloud):
    # Arrange: a fresh process with a function's environment; Act: 8 threads at once
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                             timeout=120, env={**cloud.env, "PYTHONPATH": str(FUNCTIONS)})
        # Assert: no thread failed, and all share one set of clients
        assert out.stdout.split() == ["0", "1"], out.stdout + out.stderr[-2000:]
