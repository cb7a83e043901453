"""The 30-day clock's alert (issue 16, item 9): the deploy plan creates, or updates on a
redeploy, a log-based alert policy whose filter matches the very line the ``watch_deadlines``
job logs for an overdue request (produced here by ``pacs.log_events``), and nothing else."""

from __future__ import annotations

import io
import json
import re
import sys

from pacs import log_events

from tests.deploy import printed


def _overdue_line() -> dict:
    out = io.StringIO()
    log_events.write_to(out)
    try:
        log_events.privacy_request_overdue("req-1", "export", 3)
        log_events.privacy_request_at_risk("req-2", "export", 2)
    finally:
        log_events.write_to(sys.stdout)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _matches(filter_text: str, line: dict) -> bool:
    """The two comparisons the policy's filter uses (Logging query language subset)."""
    terms = re.findall(r'(severity|jsonPayload\.(\w+))="([^"]*)"', filter_text)
    assert len(terms) == 2 and " AND " in filter_text, filter_text
    for field, payload_key, value in terms:
        actual = line["severity"] if field == "severity" else line.get(payload_key)
        if actual != value:
            return False
    return True


def test_the_plan_creates_or_updates_the_overdue_alert_policy(dry_run):
    argvs = printed.commands(dry_run.stdout)
    creates = [a for a in argvs if a[1:5] == ["alpha", "monitoring", "policies", "create"]]
    updates = [a for a in argvs if a[1:5] == ["alpha", "monitoring", "policies", "update"]]
    assert len(creates) == 1 and len(updates) == 1, (creates, updates)
    assert updates[0][5] == "${OVERDUE_POLICY}"
    files = {t.split("=", 1)[1] for a in creates + updates for t in a
             if t.startswith("--policy-from-file=")}
    assert len(files) == 1 and files.pop().endswith("/deploy/alert-overdue-requests.json")
    policy = json.loads((dry_run.build_dir / "deploy" / "alert-overdue-requests.json").read_text())
    condition = policy["conditions"][0]["conditionMatchedLog"]["filter"]
    overdue, at_risk = _overdue_line()
    assert _matches(condition, overdue) and not _matches(condition, at_risk)
    assert policy["alertStrategy"]["notificationRateLimit"]["period"] == "3600s"
    assert "monitoring.googleapis.com" in dry_run.stdout  # the API is enabled
