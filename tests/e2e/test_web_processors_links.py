"""The policy's "For a complete list of processors with links to their privacy documentation
and DPA information, see our Processors & Subprocessors page" (docs/privacy.md, row
``processors-page``): in the browser, each processor's row links its privacy notice and its
data processing addendum, exactly as ``infra/processors.json`` lists them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.webstack import WebStack, run_node

pytestmark = [pytest.mark.e2e, pytest.mark.localcloud]

SCRIPT = Path(__file__).with_name("processors_links.mjs")


def test_each_processor_links_its_privacy_notice_and_dpa(web: WebStack):
    from deploy import privacy

    out = run_node(SCRIPT, "processors-links", {"url": web.url})
    shown = {row["name"]: row["links"] for row in out["rows"]}
    listed = {s.name: s.fields for s in privacy.services() if s.personal_data}
    assert set(shown) == set(listed)
    for name, fields in listed.items():
        links = {link["text"]: link["href"] for link in shown[name]}
        assert links == {"Privacy": fields["privacy"], "DPA": fields["dpa"]}, name
        assert all(href.startswith("https://") for href in links.values()), name
    assert out["errors"] == []
