"""The web client's own unit tests (Vitest) and type check, run from pytest so that
``make test`` covers them."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.webstack import WEB

pytestmark = pytest.mark.e2e


def _npx(*args: str) -> subprocess.CompletedProcess:
    if not (WEB / "node_modules").is_dir():
        pytest.fail("web/node_modules is missing: run make install")
    return subprocess.run(["npx", "--no-install", *args], cwd=WEB, capture_output=True, text=True,
                          timeout=300)


def test_vitest_unit_tests_pass():
    proc = _npx("vitest", "run")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_typescript_type_check():
    proc = _npx("tsc", "--noEmit")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
