"""The privacy policy's numbers, docs/retention.md's periods and schedules, and the code agree.

- Every number of the policy (``pacs.settings.POLICY_FILE``) is one the code implements: the
  days to answer a request (``privacy_response_days``) and the minimum age (the 18+
  attestation's wording in the function, the web client and the CLI). A new number in the
  policy fails until it is compared here.
- Each period of docs/retention.md's table (``setting``, ``PACS_…``, **value unit**) is the
  setting's default, and the environment variable named there sets that setting.
- Each job and cron named in that table is the one of ``infra/schedules.json``, and every
  scheduled job has a row.
- Anywhere in README.md and docs/*.md, a setting's variable followed by a value
  (`` `PACS_X` (24 h)`` or `` `PACS_X`, 90 days``) states the setting's default.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from pacs import settings
from pacs.settings import Settings

from deploy import plan

ROOT = Path(__file__).resolve().parents[2]
RETENTION_DOC = ROOT / "docs" / "retention.md"
TABLE = "## Each period beside the policy sentence it implements"
SECONDS = {"s": 1, "min": 60, "h": 3600, "days": 86400, "day": 86400, "years": 365 * 86400}
FIELD_UNIT = {"_seconds": 1, "_minutes": 60, "_hours": 3600, "_days": 86400}
UNITS = {**SECONDS, "minutes": 60, "hours": 3600, "KiB": 1024, "MiB": 2**20, "GiB": 2**30}
STATED = re.compile(r"`(PACS_[A-Z0-9_]+)`(?: \(|, )(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
                    r"(?: (" + "|".join(UNITS) + r")\b)?")


@pytest.fixture(scope="module")
def policy() -> str:
    return settings.POLICY_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def defaults() -> Settings:
    return Settings.from_env({})


def policy_numbers(text: str) -> list[tuple[str, int, str]]:
    """(word before, number, unit after) of every number of the policy; the dates are left
    out (the policy version, tests/deploy/test_policy_version.py)."""
    body = re.sub(r"\b\d{4}-\d{2}-\d{2}\b", "", text)
    return [(m.group(1), int(m.group(2)), (m.group(3) or "").strip())
            for m in re.finditer(r"(\w+)\s+(\d+)(%|\s+[a-z]+)?", body)]


def test_every_number_of_the_policy_is_one_the_code_implements(policy, defaults):
    numbers = policy_numbers(policy)
    response = [n for n in numbers if n[2] == "days"]
    ages = [n for n in numbers if n[0] in ("under", "of") and n[2] == ""]
    known = [(word, n, unit) for word, n, unit in numbers if (n, unit) == (100, "%")]
    assert sorted(set(numbers) - set(response) - set(ages) - set(known)) == [], (
        "a number of the policy nobody compares with the code: add it here")
    assert response == [("within", defaults.privacy_response_days, "days")], response
    assert {n for _w, n, _u in ages} == {18} and len(ages) == 2, ages


def test_the_policy_age_is_the_age_every_attestation_asks_for(policy):
    ages = {int(a) for a in re.findall(r"under (?:the age of )?(\d+)", policy)}
    assert len(ages) == 1, ages
    [age] = ages
    pattern = r"\b(\d+) (?:years of age )?or older"
    sources = ["functions/pacs/privacy/profile.py", "web/src/views/auth.ts", "web/src/main.ts",
               "cli/pacs_cli/cmd_account.py", "cli/pacs_cli/cmd_privacy.py"]
    for rel in sources:
        found = {int(a) for a in re.findall(pattern, (ROOT / rel).read_text(encoding="utf-8"))}
        assert found == {age}, (rel, found, age)


def retention_rows() -> list[list[str]]:
    text = RETENTION_DOC.read_text(encoding="utf-8")
    start = text.index(TABLE)
    end = text.index("\n## ", start + len(TABLE)) if "\n## " in text[start + 1:] else None
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")]
            for line in text[start:end].splitlines() if line.startswith("| ")]
    assert all(len(r) == 4 for r in rows), "docs/retention.md's table has four columns"
    return rows[2:]  # the header and its rule


def periods() -> list[tuple[str, str, float]]:
    """(setting, env var, seconds) of each period cell naming a setting and a bold value."""
    out = []
    for row in retention_rows():
        m = re.search(r"`([a-z_]+)`, `(PACS_[A-Z_]+)`, \*\*(\d+)(?: (\w+))?\*\*", row[2])
        if m:
            field, env, value, unit = m.groups()
            out.append((field, env, int(value) * SECONDS[unit] if unit else int(value)))
    return out


def test_each_documented_period_is_the_settings_default(defaults):
    found = periods()
    assert len(found) >= 15, found
    for field, _env, documented in found:
        unit = next((s for suffix, s in FIELD_UNIT.items() if field.endswith(suffix)), None)
        actual = getattr(defaults, field)
        assert (actual * unit if unit else actual) == documented, (field, actual, documented)


def test_each_documented_variable_sets_its_setting():
    for field, env, _documented in periods():
        default = getattr(Settings.from_env({}), field)
        assert getattr(Settings.from_env({env: str(default + 1)}), field) == default + 1, env


def test_the_upload_backstop_is_the_deploy_plans():
    [row] = [r for r in retention_rows() if "UPLOAD_OBJECT_MAX_AGE_DAYS" in r[1]]
    assert row[2] == f"{plan.UPLOAD_OBJECT_MAX_AGE_DAYS} days", row[2]


def test_each_documented_job_and_cron_is_the_schedules():
    schedule = json.loads((ROOT / "infra" / "schedules.json").read_text())["jobs"]
    crons = {j["data"]["job"]: j["schedule"] for j in schedule}
    named = set()
    for row in retention_rows():
        m = re.match(r"`([a-z_]+)`", row[3])
        if not m:
            continue  # by signature, deploy step, –
        job = m.group(1)
        assert job in crons, f"docs/retention.md names {job}, which infra/schedules.json lacks"
        named.add(job)
        for cron in re.findall(r"`([\d*/, -]+ [\d*/, -]+ [\d*/, -]+ [\d*/, -]+ [\d*/, -]+)`",
                               row[3]):
            assert cron == crons[job], (job, cron, crons[job])
    assert set(crons) - named == set(), "a scheduled job without a row in docs/retention.md"


def test_a_wrong_period_in_the_doc_would_be_seen(defaults):
    # The parser reads what the table says: a day is 86,400 s and 3 years are 3 * 365 days.
    found = dict((f, s) for f, _e, s in periods())
    assert found["access_log_retention_days"] == 90 * 86400
    assert found["erasure_receipt_retention_days"] == defaults.erasure_receipt_retention_days * 86400
    assert found["link_ttl_seconds"] == 15 * 60


def setting_of(env: str) -> str | None:
    """The Settings field the variable sets (None: not a numeric setting of ``Settings``)."""
    defaults = Settings.from_env({})
    changed = Settings.from_env({env: "4242"})
    fields = [f.name for f in dataclasses.fields(defaults)
              if getattr(changed, f.name) != getattr(defaults, f.name)]
    return fields[0] if len(fields) == 1 else None


def stated_defaults(text: str) -> list[tuple[str, str, float]]:
    """(variable, as written, value in the setting's unit) of each stated default."""
    out = []
    for m in STATED.finditer(" ".join(text.split())):
        env, number, unit = m.groups()
        field = setting_of(env)
        if field is None:
            continue
        value = float(number.replace(",", ""))
        if unit:  # to the field's own unit
            own = next((s for suffix, s in FIELD_UNIT.items() if field.endswith(suffix)), 1)
            value = value * UNITS[unit] / own
        out.append((env, m.group(0), value))
    return out


def test_every_default_stated_in_the_docs_is_the_settings(defaults):
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    stated = {(p.name, *s) for p in docs for s in stated_defaults(p.read_text(encoding="utf-8"))}
    assert len(stated) >= 20, stated
    wrong = [(doc, text, getattr(defaults, setting_of(env)))
             for doc, env, text, value in stated if getattr(defaults, setting_of(env)) != value]
    assert wrong == [], wrong


def test_stated_defaults_are_read_in_their_units():
    text = ("`PACS_LINK_TTL_SECONDS` (15 min), `PACS_ACCESS_LOG_RETENTION_DAYS`, 90 days; "
            "`PACS_UPLOADS_PER_HOUR`, 20,000 and `PACS_INFLATE_MAX_BYTES`, 256 MiB")
    assert [(env, value) for env, _t, value in stated_defaults(text)] == [
        ("PACS_LINK_TTL_SECONDS", 900), ("PACS_ACCESS_LOG_RETENTION_DAYS", 90),
        ("PACS_UPLOADS_PER_HOUR", 20000), ("PACS_INFLATE_MAX_BYTES", 256 * 2**20)]
