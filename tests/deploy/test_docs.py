"""docs/deploy.md: the roles table is the one deploy/iam.py grants, and the operator
checklist has every item of the issue."""

from __future__ import annotations

import json

from deploy import iam
from tests.deploy.conftest import ROOT

DOC = ROOT / "docs" / "deploy.md"


def test_roles_table_matches_the_grants():
    table = json.loads((ROOT / "infra" / "functions.json").read_text())["functions"]
    expected = iam.markdown_table([fn["name"] for fn in table])
    assert expected in DOC.read_text(), (
        "docs/deploy.md's roles table is stale: paste the output of `python -m deploy.iam`")


def test_operator_checklist_items():
    text = " ".join(DOC.read_text().replace("**", "").split())
    for needle in ("APIs", "Data Access audit logs", "CMEK", "BAA",
                   "Firebase Authentication is not covered", "Identity Platform", "MFA",
                   "Art. 9", "Art. 28", "processor", "data subject is the patient",
                   "Restore test", "Breach-response runbook", "iam.serviceAccountTokenCreator",
                   "make deploy"):
        assert needle in text, needle
