"""Two safeguards of the privacy policy read from the files that deploy them (docs/privacy.md,
rows ``safeguards-examples``, ``usage-kinds`` and ``consent-accept-reject``).

- "restricted access to storage": ``storage.rules``, the file ``firebase.json`` deploys, lets
  no client read or write any object (all bytes go through upload sessions and signed URLs).
  No offline evaluator of Storage rules runs here (README, "What cannot be emulated
  offline"), so the rules are read as text: every ``allow`` is ``if false``.
- "events sent to third-party analytics providers if you consent" / "analytics and
  advertising tracking": the site uses no analytics or advertising provider at all. The
  browser enforces the production Content-Security-Policy, so every host a page may load
  from or send to must be a Google service of ``infra/processors.json`` that holds personal
  data (the processors the Processors page names); anything else (an analytics or ad
  network) fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIREBASE = json.loads((ROOT / "firebase.json").read_text())
# Firebase Authentication's browser SDK refreshes ID tokens at securetoken.googleapis.com:
# the same processor as identitytoolkit.googleapis.com (infra/processors.json).
SAME_PROCESSOR = {"securetoken.googleapis.com": "identitytoolkit.googleapis.com"}
KEYWORDS = {"'self'", "'none'", "'wasm-unsafe-eval'", "'unsafe-inline'", "data:", "blob:"}


def rule_conditions(text: str) -> list[tuple[str, str]]:
    """(operations, condition) of every ``allow`` statement, comments removed."""
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    return [(ops.strip(), cond.strip()) for ops, cond in
            re.findall(r"\ballow\s+([\w\s,]+?)(?::\s*if\s+([^;]+))?;", code)]


def test_storage_rules_let_no_client_read_or_write():
    path = ROOT / FIREBASE["storage"]["rules"]
    assert path == ROOT / "storage.rules"
    allows = rule_conditions(path.read_text())
    assert allows, "storage.rules has no allow statement: read the file again"
    assert all(cond == "false" for _ops, cond in allows), allows


def test_a_rule_that_opens_storage_is_seen():
    opened = "match /b/{b}/o { match /{p=**} { allow read: if request.auth != null; } }"
    assert rule_conditions(opened) == [("read", "request.auth != null")]
    assert rule_conditions("allow write; // allow read: if false;") == [("write", "")]


def csp_sources() -> dict[str, set[str]]:
    """Every source of every directive of the production Content-Security-Policy headers,
    by the ``source`` or ``regex`` pattern of the header block."""
    out: dict[str, set[str]] = {}
    for block in FIREBASE["hosting"]["headers"]:
        for header in block["headers"]:
            if header["key"] == "Content-Security-Policy":
                out[block.get("source") or block["regex"]] = {src for directive in header["value"].split(";")
                                        for src in directive.split()[1:]}
    return out


def test_the_browser_reaches_no_third_party_but_the_listed_processors():
    processors = json.loads((ROOT / "infra" / "processors.json").read_text())["services"]
    listed = {p["api"] for p in processors if p["personal_data"]}
    sources = csp_sources()
    assert sources, "firebase.json sets a Content-Security-Policy"
    for block, srcs in sources.items():
        hosts = {re.sub(r"^https://", "", s).rstrip("/") for s in srcs - KEYWORDS}
        assert all(s.startswith("https://") for s in srcs - KEYWORDS), (block, srcs)
        unknown = {h for h in hosts if SAME_PROCESSOR.get(h, h) not in listed}
        assert unknown == set(), f"{block}: hosts that are no listed processor: {unknown}"
