"""/.well-known/security.txt (issue 16, item 10): the built site carries it (RFC 9116: a
contact and an expiry) and Firebase Hosting uploads it, and no other dot-file or dot-folder.
The local Hosting stand-in does not apply firebase.json's ``ignore``, so the upload list is
computed here by firebase-tools' own lister (``lib/listFiles``, what ``firebase deploy``
runs) with our ``ignore``. Measured with firebase-tools 15.34.2: the earlier ``**/.*``
kept ``.well-known/`` but also uploaded files inside other dot-folders (``.git/config``):
glob's ignore drops a folder's files only for a pattern ending in ``/**``."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.deploy.conftest import ROOT

LISTER = ROOT / "node_modules" / "firebase-tools" / "lib" / "listFiles.js"


def uploaded(public: Path) -> list[str]:
    """What ``firebase deploy --only hosting`` would upload from ``public``."""
    ignore = json.loads((ROOT / "firebase.json").read_text())["hosting"]["ignore"]
    script = ("const { listFiles } = require(process.argv[1]);"
              "console.log(JSON.stringify(listFiles(process.argv[2], JSON.parse(process.argv[3]))));")
    out = subprocess.run(["node", "-e", script, str(LISTER), str(public), json.dumps(ignore)],
                         capture_output=True, text=True, timeout=60, check=True)
    return sorted(json.loads(out.stdout))


def test_hosting_uploads_well_known_but_no_other_dot_file(tmp_path):
    # Arrange: a public folder with the files a build or an editor may leave
    for name in ("index.html", ".well-known/security.txt", ".DS_Store", ".env",
                 "assets/.gitkeep", ".git/config", "firebase.json", "node_modules/x/y.js"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    # Act / Assert
    assert uploaded(tmp_path) == [".well-known/security.txt", "index.html"]


def test_the_built_site_has_a_security_txt_that_hosting_uploads():
    # Arrange: the web client as make web builds it
    public = ROOT / json.loads((ROOT / "firebase.json").read_text())["hosting"]["public"]
    text = (public / ".well-known" / "security.txt").read_text()
    # Assert: uploaded, with the policy's contact and an expiry within a year
    assert ".well-known/security.txt" in uploaded(public)
    fields = dict(line.split(": ", 1) for line in text.strip().splitlines())
    policy = (ROOT.parent / "shared" / "privacy-policy.txt").read_text()
    email = re.search(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", policy).group(0)
    assert fields["Contact"] == f"mailto:{email}"
    expires = datetime.fromisoformat(fields["Expires"].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    assert now < expires <= now + timedelta(days=366)
