"""docs/privacy.md's table "Policy promises, behaviour and tests" covers every promise of the
privacy policy (issue 16, "Done means"), so an edit of the policy forces an edit of the table.

The rule: the policy (``pacs.settings.POLICY_FILE``, ``../shared/privacy-policy.txt``) is cut
into paragraphs (blank lines) and each paragraph into sentences (``.``, ``!`` or ``?`` followed
by a space and a capital letter; ``e.g.``, ``i.e.`` and ``U.S.`` do not end one). Every
sentence is a promise and has exactly one row quoting it word for word, unless it is one of
the few listed in :data:`NOT_PROMISES` (headings, the description of the document itself, the
user's own obligation) or one of the two date lines (:data:`DATE_LINE`). A row names at least
one pytest node id (``tests/...py::test_name``, found by parsing the test files with
:mod:`ast`, never by running them) and every test it names exists; every ``pacs.…`` module or
name its behaviour names exists; a row quoting a sentence the policy no longer has fails.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest
from pacs import settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "privacy.md"
SECTION = "## Policy promises, behaviour and tests"

# Sentences that promise nothing, each with why. Kept short on purpose: anything else of the
# policy needs a row.
NOT_PROMISES: dict[str, str] = {
    **{heading: "heading" for heading in (
        "Privacy Policy", "Summary — Key Points", "Information We Collect",
        "Account and Authentication Data", "Uploads and Medical Images",
        "Usage Data & Analytics", "Automated Data & Derived Metadata", "How We Use Your Data",
        "Third-Party Services & Processors", "Legal Basis (for EU GDPR)", "Data Retention",
        "Security", "Special Note on Health Data (PHI)", "Your Rights",
        "How to Control Cookies & Tracking", "Children's Privacy", "Changes to This Policy",
        "Contact & Requests")},
    'This Privacy Policy describes how Radiology PACS App ("we", "us", "our") collects, uses, '
    'stores, and shares information when you use our website, services, and applications '
    '(the "Service").': "describes the document; its sentences below are the promises",
    "It explains choices you can make about your information and how to contact us about "
    "privacy concerns.": "describes the document",
    "If you are subject to health data regulations (e.g., HIPAA in the U.S., or national laws "
    "in your country), you should ensure that you have appropriate legal grounds and consents "
    "before uploading PHI.": "the user's obligation, not the service's",
}

# The two date lines are the policy version (row ``changes-posted`` and its tests), whatever
# the date: a new date alone asks every user again but promises nothing new.
DATE_LINE = re.compile(r"(?:Effective date|Last updated): \d{4}-\d{2}-\d{2}")
_SENTENCE_END = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<!U\.S\.)(?<=[.!?])\s+(?=[A-Z\"(])")
_NODE_ID = re.compile(r"`(tests/[\w/]+\.py::[\w:\[\]-]+)`")
_TEST_REF = re.compile(r"`((?:tests|web/test)/[\w/.-]+?\.(?:py|ts)(?:::[\w:\[\]-]+)?)`")
_KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_CODE_REF = re.compile(r"`(pacs(?:\.\w+)+)`")


def _resolves(dotted: str) -> bool:
    """Whether ``pacs.a.b`` is a module, or an attribute of one."""
    if importlib.util.find_spec(dotted) is not None:
        return True
    module, _, name = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


def sentences(text: str) -> list[str]:
    """The policy's sentences, whitespace collapsed, in order."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        if flat:
            out.extend(s for s in _SENTENCE_END.split(flat) if s)
    return out


def promises(policy: str) -> list[str]:
    """The sentences that need a row: all but :data:`NOT_PROMISES` and the date lines."""
    return [s for s in sentences(policy) if s not in NOT_PROMISES and not DATE_LINE.fullmatch(s)]


def table_rows(markdown: str) -> list[dict[str, str]]:
    """The rows of the section's table: key, quoted sentence, behaviour, tests."""
    start = markdown.index(SECTION)
    end = markdown.find("\n## ", start + len(SECTION))
    rows = []
    for line in markdown[start:end if end >= 0 else None].splitlines():
        if not line.startswith("| `"):
            continue  # prose, the header row and its rule
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 4, f"a row has key | sentence | behaviour | tests: {line[:120]}"
        key, quote, behaviour, tests = cells
        assert quote.startswith('"') and quote.endswith('"'), f"quote the sentence: {key}"
        rows.append({"key": key.strip("`"), "sentence": quote[1:-1], "behaviour": behaviour,
                     "tests": tests})
    return rows


def node_ids(root: Path) -> set[str]:
    """Every test function's pytest node id under ``root/tests``, read with :mod:`ast`."""
    ids: set[str] = set()
    for path in sorted((root / "tests").rglob("test_*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.parse(path.read_text(encoding="utf-8"), filename=rel).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                    and node.name.startswith("test"):
                ids.add(f"{rel}::{node.name}")
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                ids.update(f"{rel}::{node.name}::{m.name}" for m in node.body
                           if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
                           and m.name.startswith("test"))
    return ids


def problems(policy: str, markdown: str, known_tests: set[str], root: Path) -> list[str]:
    """Everything wrong between the policy and the table, one line each (empty: in step)."""
    said = sentences(policy)
    rows = table_rows(markdown)
    out = []
    quoted = [r["sentence"] for r in rows]
    out += [f"policy sentence without a row: {s!r}" for s in promises(policy) if s not in quoted]
    out += [f"row {r['key']!r} quotes a sentence the policy no longer has: {r['sentence']!r}"
            for r in rows if r["sentence"] not in said]
    out += [f"row {r['key']!r} quotes a sentence listed as no promise" for r in rows
            if r["sentence"] in NOT_PROMISES or DATE_LINE.fullmatch(r["sentence"])]
    out += [f"more than one row quotes {s!r}" for s in set(quoted) if quoted.count(s) > 1]
    out += [f"NOT_PROMISES names a sentence the policy no longer has: {s!r}"
            for s in NOT_PROMISES if s not in said]
    keys = [r["key"] for r in rows]
    out += [f"bad or repeated key {k!r}" for k in keys
            if not _KEY.match(k) or keys.count(k) > 1]
    for row in rows:
        out += [f"row {row['key']!r}: no module or name {ref}"
                for ref in _CODE_REF.findall(row["behaviour"]) if not _resolves(ref)]
        if not _NODE_ID.search(row["tests"]):
            out.append(f"row {row['key']!r} names no test function (tests/...py::test_name)")
        for ref in _TEST_REF.findall(row["tests"]):
            path, _, name = ref.partition("::")
            if not (root / path).is_file():
                out.append(f"row {row['key']!r}: no file {path}")
            elif name and ref.split("[")[0] not in known_tests:
                out.append(f"row {row['key']!r}: no test {ref}")
    return out


@pytest.fixture(scope="module")
def policy() -> str:
    return settings.POLICY_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def markdown() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def known_tests() -> set[str]:
    return node_ids(ROOT)


def test_every_promise_of_the_policy_has_a_row_naming_existing_tests(policy, markdown,
                                                                   known_tests):
    found = problems(policy, markdown, known_tests, ROOT)
    assert not found, "docs/privacy.md's policy table is out of step:\n" + "\n".join(found)


def test_the_table_has_one_row_per_promise(policy, markdown):
    # The rule would pass with an empty policy; this one has more promises than not.
    assert len(table_rows(markdown)) == len(promises(policy)) > 30


# --- The rule itself: each way of falling out of step is reported -------------------------------

def test_a_new_policy_sentence_without_a_row_is_reported(policy, markdown, known_tests):
    added = "We sell your studies to anyone who asks."
    edited = policy.replace("Data Retention\n", f"Data Retention\n\n{added}\n", 1)
    assert f"policy sentence without a row: {added!r}" in problems(
        edited, markdown, known_tests, ROOT)


def test_an_edited_sentence_is_reported_on_both_sides(policy, markdown, known_tests):
    old = "We generally respond to verified requests within 30 days."
    new = "We generally respond to verified requests within 90 days."
    found = problems(policy.replace(old, new), markdown, known_tests, ROOT)
    assert f"policy sentence without a row: {new!r}" in found
    assert any("no longer has" in p and old in p for p in found)


def test_a_row_naming_a_missing_test_is_reported(policy, markdown, known_tests):
    ref = "tests/integration/test_pacs_admin.py::test_an_operator_lists_open_and_overdue_requests"
    assert ref in markdown
    gone = "tests/integration/test_pacs_admin.py::test_it_was_renamed"
    found = problems(policy, markdown.replace(ref, gone), known_tests, ROOT)
    assert any(p.endswith(f"no test {gone}") for p in found), found


def test_a_row_without_a_test_function_is_reported(policy, markdown, known_tests):
    rows = table_rows(markdown)
    line = next(ln for ln in markdown.splitlines() if ln.startswith(f"| `{rows[0]['key']}` |"))
    bare = line.rsplit(" | ", 1)[0] + " | none yet |"
    found = problems(policy, markdown.replace(line, bare), known_tests, ROOT)
    assert f"row {rows[0]['key']!r} names no test function (tests/...py::test_name)" in found


def test_a_new_effective_date_alone_needs_no_table_edit(policy, markdown, known_tests):
    dated = re.sub(r"(Effective date|Last updated): \S+", r"\1: 2031-01-01", policy)
    assert dated != policy
    assert problems(dated, markdown, known_tests, ROOT) == []


def test_a_row_naming_code_that_is_gone_is_reported(policy, markdown, known_tests):
    assert "`pacs.retention.trends`" in markdown
    edited = markdown.replace("`pacs.retention.trends`", "`pacs.retention.trendz`", 1)
    found = problems(policy, edited, known_tests, ROOT)
    assert any(p.endswith("no module or name pacs.retention.trendz") for p in found), found


def test_sentences_keep_abbreviations_and_split_paragraphs():
    text = "Title\n\nWe do A (e.g., B in the U.S., or C). We do D.\nStill D? Yes.\n"
    assert sentences(text) == ["Title", "We do A (e.g., B in the U.S., or C).", "We do D.",
                               "Still D?", "Yes."]


def test_node_ids_are_read_from_the_source(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "def test_a():\n    pass\n\ndef helper():\n    pass\n\n"
        "class TestB:\n    def test_c(self):\n        pass\n")
    assert node_ids(tmp_path) == {"tests/test_x.py::test_a", "tests/test_x.py::TestB::test_c"}
