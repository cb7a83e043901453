"""Automated accessibility audit: axe-core on the key pages, at desktop and phone width."""

from __future__ import annotations

import pytest

from tests.e2e.viewer_data import SLICES_NAME
from tests.e2e.webstack import run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

BLOCKING = ("serious", "critical")


def test_key_pages_have_no_serious_accessibility_violations(web, viewer_account):
    user, studies = viewer_account
    out = run_scenario("a11y", web, {"email": user.email, "password": user.password,
                                     "studyId": studies[SLICES_NAME]["id"]})
    audits = out["audits"]
    # Every key page was audited three ways (desktop, phone, dark), each a real run.
    assert len(audits) == 3 * 9, [a["page"] for a in audits]
    assert all(a["passes"] > 10 and a["contrastChecked"] for a in audits), audits
    violations = [v for a in audits for v in a["violations"]]
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, "\n".join(
        f"{v['page']}: {v['id']} ({v['impact']}) {v['help']} — {', '.join(v['targets'])}"
        for v in blocking)
    # Minor and moderate findings go to the test log, not to the verdict.
    print(sorted((v["page"], v["id"], v["impact"]) for v in violations))
