"""Share recipients' IP addresses and browsers (issue 16, item 4).

Someone who opens a share link is not the owner: the owner sees when, which share, the
recipient's network (IP truncated to /24 for IPv4, /48 for IPv6) and browser family. The full
IP address and user agent go to ``access_clients/{record id}``, which no client may read (the
rules matrix), which expires with the access records (``purge_logs``), goes with an erasure
and is not in the owner's export.
"""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta

import pytest
from pacs.links import access_log
from pacs.privacy import personal_data

from tests.retention_helpers import now, run_scheduled
from tests.rules_matrix import assert_closed_to_clients
from tests.sign_link_helpers import access_records, call, create_share, ok, seed_study

pytestmark = pytest.mark.localcloud

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
          "Gecko) Chrome/126.0.0.0 Safari/537.36")
IPV4, IPV6 = "198.51.100.77", "2001:db8:abcd:12:1::7"


def test_the_owner_sees_only_network_and_browser_of_share_recipients(cloud, owner):
    other = cloud.create_user()
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    share = create_share(cloud, owner, seeded.study_key, max_views=5)
    for ip, agent in ((IPV4, FIREFOX), (IPV6, CHROME)):
        ok(call(cloud, "share/manifest", {"token": share["token"]},
                headers={"X-Forwarded-For": ip, "User-Agent": agent}))
    # What the owner is shown (GET /access, the study page's source).
    listed = call(cloud, "access", method="GET", user=owner, params={"limit": 50})
    used = [r for r in ok(listed)["records"] if r["kind"] == "share_used"]
    assert sorted((r["ip_prefix"], r["browser"]) for r in used) == [
        ("198.51.100.0/24", "Firefox"), ("2001:db8:abcd::/48", "Chrome")]
    assert all("ip" not in r and "user_agent" not in r for r in used), used
    for secret in (IPV4, IPV6, FIREFOX, CHROME, "rv:128.0", "Macintosh"):
        assert secret not in listed.text
    # ... and what the owner's client could read of the access documents directly.
    stored = [r for r in access_records(cloud, owner.uid) if r["kind"] == "share_used"]
    assert not json.dumps([{k: v for k, v in r.items() if k != "at"} for r in stored]).count(
        IPV4)
    # The full values: server-only, one document per record, same id.
    fs = cloud.clients().firestore
    ids = [r["id"] for r in used]
    full = {i: fs.collection(access_log.CLIENTS).document(i).get().to_dict() for i in ids}
    assert sorted((d["ip"], d["user_agent"]) for d in full.values()) == sorted(
        [(IPV4, FIREFOX), (IPV6, CHROME)])
    assert {d["owner"] for d in full.values()} == {owner.uid}
    # The owner's own actions keep their own address (theirs to see).
    own = [r for r in ok(listed)["records"] if r["actor_type"] == "owner"]
    assert own and all(r["ip"] == "127.0.0.1" for r in own)
    # No client reads them: not the owner, not anyone.
    for record_id in ids:
        assert_closed_to_clients(cloud, f"{access_log.CLIENTS}/{record_id}", owner, other,
                                 access_log.CLIENTS)


def test_a_share_used_through_dicomweb_is_counted_with_coarse_values(cloud, owner):
    """The daily record of a share's DICOMweb use (pacs.keys.access) follows the same rule."""
    fs = cloud.clients().firestore
    client = access_log.ClientInfo(IPV4, FIREFOX)
    record_id = access_log.daily_id("s", "share" + owner.uid[:8], now())
    from google.cloud import firestore as gfs

    @gfs.transactional
    def use(transaction) -> None:
        access_log.daily_write(transaction, fs, record_id=record_id, owner=owner.uid,
                               study_key="s" * 32, kind="share_dicomweb", actor="share-1",
                               actor_type="share", client=client, at=now())

    for _ in range(2):
        use(fs.transaction())
    record = fs.collection(access_log.COLLECTION).document(record_id).get().to_dict()
    assert record["count"] == 2 and "ip" not in record and "user_agent" not in record
    assert (record["ip_prefix"], record["browser"]) == ("198.51.100.0/24", "Firefox")
    full = fs.collection(access_log.CLIENTS).document(record_id).get().to_dict()
    assert (full["ip"], full["user_agent"], full["owner"]) == (IPV4, FIREFOX, owner.uid)


def test_the_owners_export_has_the_coarse_values_only(cloud, tmp_path):
    from tests import privacy_helpers as ph
    from tests.sign_link_helpers import fetch

    user = cloud.create_user()
    ph.create_profile(cloud, user)
    seeded = seed_study(cloud, user.uid, instances_per_series=(1,), previews=False)
    share = create_share(cloud, user, seeded.study_key)
    ok(call(cloud, "share/manifest", {"token": share["token"]},
            headers={"X-Forwarded-For": IPV4, "User-Agent": FIREFOX}))
    request = ph.ok(ph.call(cloud, "requests", user, body={"type": "export"}), 202)["request"]
    done = ph.wait_request(cloud, user, request["id"], timeout=300)
    assert done["status"] == "completed", done
    link = ph.ok(ph.call(cloud, f"requests/{request['id']}/download", user))["download_url"]
    archive = tmp_path / "export.zip"
    archive.write_bytes(fetch(link).content)
    with zipfile.ZipFile(archive) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    everything = b"".join(members.values())
    assert b"198.51.100.0/24" in everything  # the owner's access history, coarse
    for secret in (IPV4, FIREFOX, "rv:128.0"):
        assert secret.encode() not in everything, secret
    assert not [n for n in members if "access_clients" in n]
    # The registry: erased with the account, left out of the export.
    [location] = [loc for loc in personal_data.LOCATIONS if loc.name == "access_clients"]
    assert location.collection_group == access_log.CLIENTS and location.export is False


@pytest.mark.parametrize(("ip", "network"), [
    ("203.0.113.200", "203.0.113.0/24"), ("::ffff:203.0.113.9", "203.0.113.0/24"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"), ("not-an-ip", None), (None, None)])
def test_coarse_ip(ip, network):
    assert access_log.coarse_ip(ip) == network


@pytest.mark.parametrize(("agent", "family"), [
    (FIREFOX, "Firefox"), (CHROME, "Chrome"),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0",
     "Edge"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari"),
    ("dicomweb-client/0.61.2 python-requests/2.32", "Other"), (None, None)])
def test_browser_family(agent, family):
    assert access_log.browser_family(agent) == family


def test_full_values_expire_with_the_access_records(clean_firestore):
    cloud = clean_firestore
    fs = cloud.clients().firestore
    days = cloud.settings().access_log_retention_days
    t = now()
    ages = {"old": timedelta(days=days, hours=1), "kept": timedelta(days=days - 1)}
    for name, age in ages.items():
        fs.collection(access_log.CLIENTS).document(name).set({
            "owner": "u1", "at": t - age, "kind": "share_used", "ip": IPV4,
            "user_agent": FIREFOX})
    record = run_scheduled(cloud, "purge_logs")
    assert record["counts"]["access_clients_deleted"] == 1
    assert {s.id for s in fs.collection(access_log.CLIENTS).stream()} == {"kept"}
