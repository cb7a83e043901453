"""What the deploy plan does for the privacy policy's promises, as data the plan and its
tests share:

- the Google services it enables, each with what it holds of personal data
  (``infra/processors.json``, also the source of the web client's Processors page);
- the services that can receive personal data in a request URL (a standard API puts search
  keys in the query string), whose request logs are excluded from Cloud Logging.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from deploy.requirements import ROOT

PROCESSORS_FILE = ROOT / "infra" / "processors.json"
_PAGE_FIELDS = ("name", "entity", "purpose", "data", "location", "privacy", "dpa")

# HTTP functions whose standard API carries PHI in the URL: DICOMweb QIDO-RS searches put
# PatientName, PatientID, AccessionNumber, ... in the query string (PS3.18). Our own clients
# send search filters in POST bodies instead (the studies function refuses them in URLs).
PHI_IN_URL = {
    "dicomweb": "QIDO-RS search keys (PatientName, PatientID, ...) are query parameters",
}
# One exclusion on the _Default sink: the Cloud Run request log entries of these services
# (a 2nd-gen function is a Cloud Run service of the same name) are never stored.
REQUEST_LOG_EXCLUSION = "pacs-phi-request-urls"
REQUEST_LOG = "run.googleapis.com/requests"


class ProcessorsError(ValueError):
    """infra/processors.json is malformed (a page field or a reason is missing)."""


@dataclass(frozen=True)
class Service:
    """One enabled Google API and what it holds."""

    api: str
    name: str
    personal_data: bool
    fields: dict


def services(path: Path = PROCESSORS_FILE) -> list[Service]:
    """Every service of ``infra/processors.json``, checked: one entry per API, page fields
    for those holding personal data, a reason (``why_not``) for the others."""
    out, seen = [], set()
    for raw in json.loads(path.read_text())["services"]:
        api, personal = raw.get("api", ""), raw.get("personal_data")
        if not api.endswith(".googleapis.com") or api in seen or not isinstance(personal, bool):
            raise ProcessorsError(f"bad or repeated service entry: {raw!r}")
        missing = [f for f in (_PAGE_FIELDS if personal else ("name", "why_not"))
                   if not str(raw.get(f, "")).strip()]
        if missing:
            raise ProcessorsError(f"{api}: missing {', '.join(missing)}")
        seen.add(api)
        out.append(Service(api, raw["name"], personal, raw))
    return out


def enabled_apis(path: Path = PROCESSORS_FILE) -> tuple[str, ...]:
    """The APIs the plan enables: exactly the services listed."""
    return tuple(s.api for s in services(path))


def request_log_exclusion_filter(function_names: list[str]) -> str:
    """The Cloud Logging filter matching the request log entries of these services (no
    commas: gcloud's ``--add-exclusion`` splits its value on them)."""
    names = " OR ".join(f'resource.labels.service_name="{n}"' for n in sorted(function_names))
    return (f'log_id("{REQUEST_LOG}") AND resource.type="cloud_run_revision" AND ({names})')


def exclusion_flag(function_names: list[str]) -> str:
    """The value of ``--add-exclusion`` / ``--update-exclusion``."""
    return f"name={REQUEST_LOG_EXCLUSION},filter={request_log_exclusion_filter(function_names)}"
