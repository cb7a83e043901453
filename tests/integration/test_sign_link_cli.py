"""The ``pacs`` CLI's viewer-link commands against the local cloud: ``link`` (previews and
instance URLs), ``share``, ``shares``, ``revoke`` and ``access-log``, and their errors.

Studies are seeded directly and URLs verified offline: ``tests/sign_link_helpers.py``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from localcloud import config
from tests.sign_link_helpers import TTL, exchange, ok, seed_study
from tests.v4_verifier import verify

pytestmark = pytest.mark.localcloud


def test_cli_link_share_shares_revoke_and_access_log(cloud, tmp_path, public_key):
    user = cloud.create_user()
    seeded = seed_study(cloud, user.uid, instances_per_series=(2, 1))
    env = cloud.cli_env(tmp_path / "home")

    def pacs(*args):
        proc = subprocess.run([sys.executable, "-m", "pacs_cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=120, cwd=config.ROOT)
        return proc

    def pacs_json(*args):
        proc = pacs(*args, "--json")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return json.loads(proc.stdout)

    pacs_json("login", "--email", user.email, "--password", user.password)
    # pacs link: previews and the first series' instance URLs; --all: every series
    linked = pacs_json("link", seeded.study_key)
    first, second = linked["series"]
    assert first["preview"]["url"] and len(first["instances"]) == 2
    assert "instances" not in second
    for row in first["instances"]:
        verify(row["url"], public_key, max_lifetime=TTL)
    everything = pacs_json("link", seeded.study_key, "--all")
    assert [len(s["instances"]) for s in everything["series"]] == [2, 1]
    human = pacs("link", seeded.study_key)
    assert human.returncode == 0 and "expire" in human.stdout and "http" in human.stdout
    # pacs share / shares / revoke
    shared = pacs_json("share", seeded.study_key, "--expires", "2h", "--max-views", "3")
    assert shared["url"].endswith("#" + shared["token"]) and shared["max_views"] == 3
    expires = datetime.fromisoformat(shared["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=2)
    ok(exchange(cloud, shared["token"]))
    listed = pacs_json("shares")["shares"]
    assert [s["share_id"] for s in listed] == [shared["share_id"]]
    assert listed[0]["views"] == 1 and listed[0]["status"] == "active"
    assert pacs_json("revoke", shared["share_id"])["status"] == "revoked"
    assert exchange(cloud, shared["token"]).status_code == 404
    # pacs access-log
    log = pacs_json("access-log")["records"]
    assert {r["kind"] for r in log} >= {"manifest", "series_urls", "share_created",
                                        "share_used", "share_revoked"}
    assert pacs("access-log").returncode == 0
    # Errors: an unknown study, a bad duration
    bad = pacs("link", secrets.token_hex(16), "--json")
    assert bad.returncode != 0 and json.loads(bad.stdout)["error"] == "not_found"
    assert pacs("share", seeded.study_key, "--expires", "soon").returncode != 0
