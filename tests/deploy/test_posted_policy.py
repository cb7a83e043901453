"""The privacy policy's promise "We will post the updated policy here with a revised effective
date" (docs/privacy.md, row ``changes-posted``): the built site publishes the policy file
itself, byte for byte, at /privacy-policy.txt, and Firebase Hosting uploads it. A stale copy
(a build from before the policy changed) fails here; ``make web`` rebuilds when the file
changes."""

from __future__ import annotations

import json

from pacs import settings

from tests.deploy.conftest import ROOT
from tests.deploy.test_security_txt import uploaded


def test_the_built_site_posts_the_policy_file_itself():
    public = ROOT / json.loads((ROOT / "firebase.json").read_text())["hosting"]["public"]
    posted = public / "privacy-policy.txt"
    assert posted.read_bytes() == settings.POLICY_FILE.read_bytes(), (
        "web/dist holds another policy than ../shared/privacy-policy.txt: run make web")
    assert "privacy-policy.txt" in uploaded(public)
