"""bench/cpu.py: CPU of process trees from /proc, checked against real processes that burn
a known amount of CPU (a busy loop on their own process clock), not against mocks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bench import cpu

# A process burns BURN CPU seconds each time it reads a line, then answers "done".
BURNER = textwrap.dedent("""
    import sys, time
    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
    for line in sys.stdin:
        burn(float(line))
        print("done", flush=True)
""")

# A parent that starts one burner child and, on each line, makes the child burn, then
# burns itself; on "exit" it stops the child and waits for it (its CPU moves to cutime).
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
    print("ready", child.pid, flush=True)
    for line in sys.stdin:
        if line.strip() == "exit":
            child.stdin.write("0.3\\n"); child.stdin.flush(); child.stdout.readline()
            child.stdin.close(); child.wait()
            print("reaped", flush=True)
            continue
        child.stdin.write(line); child.stdin.flush(); child.stdout.readline()
        burn(float(line))
        print("done", flush=True)
""")

# Slack for the interpreter's own work around the loop (reading a line, printing), and
# for clock-tick rounding (10 ms per reading).
SLACK = 0.12


def _start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _ask(proc: subprocess.Popen, line: str) -> str:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_one_process_burning_known_cpu(procs):
    proc = _start(BURNER)
    procs.append(proc)
    assert _ask(proc, "0.01") == "done"  # the interpreter has started
    before = cpu.snapshot({"burner": proc.pid})
    assert _ask(proc, "0.4") == "done"
    spent = cpu.spent(before, cpu.snapshot({"burner": proc.pid}))["burner"]
    assert 0.4 - 0.011 <= spent <= 0.4 + SLACK


def test_tree_counts_live_children_and_reaped_ones(procs):
    parent = _start(PARENT, BURNER)
    procs.append(parent)
    ready = parent.stdout.readline().split()
    assert ready[0] == "ready"
    child = int(ready[1])
    assert set(cpu.tree(parent.pid)) == {parent.pid, child}
    assert _ask(parent, "0.01") == "done"
    before = cpu.snapshot({"tree": parent.pid, "child": child})
    assert _ask(parent, "0.25") == "done"  # the child burns 0.25 s, then the parent 0.25 s
    middle = cpu.snapshot({"tree": parent.pid, "child": child})
    both = cpu.spent(before, middle)
    assert 0.25 - 0.011 <= both["child"] <= 0.25 + SLACK
    assert 0.5 - 0.022 <= both["tree"] <= 0.5 + 2 * SLACK
    # The child burns 0.3 s more, exits and is waited for: the tree still counts it
    # (in the parent's cutime), although the child is gone.
    assert _ask(parent, "exit") == "reaped"
    after = cpu.snapshot({"tree": parent.pid, "child": child})
    assert cpu.tree(parent.pid) == [parent.pid]
    assert after["child"] == 0.0
    assert 0.3 - 0.011 <= after["tree"] - middle["tree"] <= 0.3 + SLACK


def test_other_processes_are_not_counted(procs):
    busy, idle = _start(BURNER), _start(BURNER)
    procs.extend([busy, idle])
    for proc in (busy, idle):
        assert _ask(proc, "0.01") == "done"
    before = cpu.snapshot({"idle": idle.pid})
    assert _ask(busy, "0.3") == "done"
    assert cpu.spent(before, cpu.snapshot({"idle": idle.pid}))["idle"] < 0.03
    assert busy.pid not in cpu.tree(idle.pid)


def test_gone_process_and_per_instance_figures(procs):
    proc = _start(BURNER)
    proc.stdin.close()
    proc.wait()
    assert cpu.tree(proc.pid) == []
    assert cpu.tree_cpu_seconds(proc.pid) == 0.0
    figures = cpu.per_instance_ms({"a": 1.0, "b": 0.5}, 500)
    assert figures == {"a": 2.0, "b": 1.0, "sum": 3.0}
