"""The web client's consent version follows the policy file (issue 16, item 2): its
policy-version unit test passes when built against the shared policy and against a policy
with a new effective date, where a choice made under the old date asks again."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.deploy.test_policy_version import POLICY, effective_date
from tests.e2e.webstack import WEB

pytestmark = pytest.mark.e2e


def _vitest(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["npx", "--no-install", "vitest", "run", "test/policy-version.test.ts"],
                          cwd=WEB, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_web_consent_version_is_the_policy_effective_date(tmp_path):
    if not (WEB / "node_modules").is_dir():
        pytest.fail("web/node_modules is missing: run make install")
    proc = _vitest({})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    old = effective_date(POLICY.read_text())
    new_policy = tmp_path / "privacy-policy.txt"
    new_policy.write_text(POLICY.read_text().replace(f"Effective date: {old}",
                                                     "Effective date: 2031-04-05"))
    proc = _vitest({"PACS_POLICY_FILE": str(new_policy), "PACS_PREVIOUS_POLICY_VERSION": old})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
