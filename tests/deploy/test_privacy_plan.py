"""The deploy plan's privacy promises (issue 16, items 3 and 5), read back from the printed
script.

- Every Google API the plan enables is listed in ``infra/processors.json`` with what it
  holds; those holding personal data are the Processors page (Cloud Logging and Secret
  Manager among them); a service enabled but not listed fails here.
- Every service whose standard API can carry PHI in a request URL (DICOMweb QIDO-RS) has
  its request log entries excluded from Cloud Logging by an exclusion on the _Default sink.
"""

from __future__ import annotations

import json
import re

import pytest
from pacs.dicomweb import qido

from deploy import privacy
from tests.deploy import printed
from tests.deploy.conftest import ROOT

PROCESSORS = json.loads((ROOT / "infra" / "processors.json").read_text())["services"]


def enabled_apis(stdout: str) -> set[str]:
    found = set()
    for argv in printed.commands(stdout):
        if argv[1:3] == ["services", "enable"]:
            found |= {a for a in argv[3:] if not a.startswith("--")}
    return found


def test_every_enabled_service_is_listed_with_what_it_holds(dry_run):
    enabled = enabled_apis(dry_run.stdout)
    listed = {s["api"] for s in PROCESSORS}
    assert enabled, "the plan enables no API"
    assert enabled <= listed, f"enabled but not on the processors list: {enabled - listed}"
    assert listed <= enabled, f"listed but not enabled: {listed - enabled}"
    personal = {s.api for s in privacy.services() if s.personal_data}
    # The services the review found missing from the page hold personal data.
    assert {"logging.googleapis.com", "secretmanager.googleapis.com",
            "identitytoolkit.googleapis.com", "firestore.googleapis.com",
            "storage.googleapis.com", "firebasehosting.googleapis.com"} <= personal
    logging = next(s for s in PROCESSORS if s["api"] == "logging.googleapis.com")
    assert "Global" in logging["location"] and "_Default" in logging["location"]


def test_a_service_without_what_it_holds_is_refused(tmp_path):
    entries = [dict(s) for s in PROCESSORS]
    del next(s for s in entries if s["api"] == "secretmanager.googleapis.com")["data"]
    broken = tmp_path / "processors.json"
    broken.write_text(json.dumps({"services": entries}))
    with pytest.raises(privacy.ProcessorsError, match="secretmanager.googleapis.com: missing data"):
        privacy.services(broken)
    entries = [dict(s) for s in PROCESSORS]
    del next(s for s in entries if s["api"] == "iam.googleapis.com")["why_not"]
    broken.write_text(json.dumps({"services": entries}))
    with pytest.raises(privacy.ProcessorsError, match="iam.googleapis.com: missing why_not"):
        privacy.services(broken)


def _exclusions(stdout: str) -> dict[str, list[str]]:
    """flag → the values of --add-exclusion / --update-exclusion on the _Default sink."""
    found: dict[str, list[str]] = {"--add-exclusion": [], "--update-exclusion": []}
    for argv in printed.commands(stdout):
        if argv[1:5] == ["logging", "sinks", "update", "_Default"]:
            for flag in found:
                found[flag] += printed.flag_values(argv, flag)
    return found


def test_request_logs_of_every_service_with_phi_in_urls_are_excluded(dry_run):
    # DICOMweb QIDO-RS takes patient names and IDs as query parameters.
    assert {"PatientName", "PatientID"} <= set(qido.STUDY_KEYS)
    http = {fn["name"] for fn in dry_run.table if fn["trigger"]["type"] == "http"}
    assert "dicomweb" in http and "dicomweb" in privacy.PHI_IN_URL
    phi_url = {name for name in http if name in privacy.PHI_IN_URL}
    exclusions = _exclusions(dry_run.stdout)
    assert exclusions["--add-exclusion"] and exclusions["--add-exclusion"] == \
        exclusions["--update-exclusion"], exclusions
    for value in exclusions["--add-exclusion"]:
        name, filt = re.fullmatch(r"name=([a-z0-9-]+),filter=(.+)", value).groups()
        assert name == privacy.REQUEST_LOG_EXCLUSION
        assert 'log_id("run.googleapis.com/requests")' in filt
        assert 'resource.type="cloud_run_revision"' in filt
        assert set(re.findall(r'resource\.labels\.service_name="([^"]+)"', filt)) == phi_url
    # The exclusion is found by name on the next deploy (updated, not added twice).
    assert "exclusions.name=" + privacy.REQUEST_LOG_EXCLUSION in dry_run.stdout
