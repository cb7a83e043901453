"""One privacy-policy version (issue 16, item 2): the policy file's "Effective date" line is
the version the web client records consent under (read at build time, web/vite.config.ts)
and the version every deployed function gets (``PACS_POLICY_VERSION``, set by the deploy
plan: deployed functions cannot read ../shared). The plan's value follows the file, and a
new effective date makes every earlier grant ask again."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pacs import settings as settings_mod
from pacs.privacy import consent

from tests.deploy import printed
from tests.deploy.conftest import PROJECT, REGION, ROOT, run_deploy

POLICY = ROOT.parent / "shared" / "privacy-policy.txt"


def effective_date(text: str) -> str:
    """The date of the policy's "Effective date:" line, read independently of the code."""
    [line] = [ln for ln in text.splitlines() if ln.startswith("Effective date:")]
    return line.split(":", 1)[1].strip()


def deployed_versions(stdout: str) -> dict[str, str]:
    found = {}
    for argv in printed.commands(stdout):
        if argv[1:3] == ["functions", "deploy"]:
            [env] = printed.flag_values(argv, "--set-env-vars")
            found[argv[3]] = dict(i.split("=", 1) for i in env.split(",")).get(
                "PACS_POLICY_VERSION")
    return found


def test_every_function_gets_the_effective_date_of_the_policy(dry_run):
    date = effective_date(POLICY.read_text())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)
    versions = deployed_versions(dry_run.stdout)
    assert set(versions) == {fn["name"] for fn in dry_run.table}
    assert set(versions.values()) == {date}, versions
    # Local runs read the same file: the local cloud's functions agree with the plan.
    local = settings_mod.Settings.from_env({"GOOGLE_CLOUD_PROJECT": "demo-policy"})
    assert local.policy_version == date


def test_a_new_effective_date_reaches_the_plan_and_asks_everyone_again(tmp_path, monkeypatch):
    old = effective_date(POLICY.read_text())
    new_text = POLICY.read_text().replace(f"Effective date: {old}", "Effective date: 2031-04-05")
    new_policy = tmp_path / "privacy-policy.txt"
    new_policy.write_text(new_text)
    monkeypatch.setenv("PACS_POLICY_FILE", str(new_policy))
    proc = run_deploy("--project", PROJECT, "--region", REGION, build_dir=tmp_path / "build")
    assert proc.returncode == 0, proc.stderr
    assert set(deployed_versions(proc.stdout).values()) == {"2031-04-05"}
    local = settings_mod.Settings.from_env({"GOOGLE_CLOUD_PROJECT": "demo-policy",
                                            "PACS_POLICY_FILE": str(new_policy)})
    assert local.policy_version == "2031-04-05"
    # A grant recorded under the old date must be renewed under the new one.
    granted = {"consent": {"analytics": True, "policy_version": old,
                           "at": datetime.now(UTC)}}
    assert consent.state(granted, old)["needs_renewal"] is False
    assert consent.state(granted, local.policy_version)["needs_renewal"] is True


def test_deployed_functions_refuse_to_start_without_the_version(tmp_path):
    # Deployed: no ../shared beside the staged code, so only the setting can say it.
    env = {"GOOGLE_CLOUD_PROJECT": "pacs-prod-1", "K_SERVICE": "studies",
           "PACS_HASH_KEY": "k" * 32, "PACS_POLICY_FILE": str(tmp_path / "absent.txt")}
    with pytest.raises(settings_mod.MissingSecret, match="PACS_POLICY_VERSION"):
        settings_mod.Settings.from_env(env)
    given = settings_mod.Settings.from_env({**env, "PACS_POLICY_VERSION": "2026-02-08"})
    assert given.policy_version == "2026-02-08"


def test_a_policy_without_an_effective_date_is_refused(tmp_path):
    bad = tmp_path / "policy.txt"
    bad.write_text("Privacy Policy\n\nLast updated: 2026-02-08\n")
    with pytest.raises(ValueError, match="Effective date"):
        settings_mod.Settings.from_env({"GOOGLE_CLOUD_PROJECT": "demo-policy",
                                        "PACS_POLICY_FILE": str(bad)})
