"""The access history of viewer links on the local cloud: every manifest, series page and
share event writes an access record (listed to the owner only, newest first), share
tokens and signed URLs never reach the logs, and the rules matrix of shares and access
records (the owner reads, nobody writes).

Studies are seeded directly and URLs verified offline: ``tests/sign_link_helpers.py``.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter
from pacs.links import access_log

from tests.localcloud_fixture import wait_for
from tests.rules_matrix import (
    ANONYMOUS,
    assert_owner_reads_only,
    assert_queries,
    assert_writes_denied,
    owner_query,
)
from tests.sign_link_helpers import (
    UA,
    access_records,
    call,
    create_share,
    exchange,
    mutated,
    ok,
    seed_study,
)

pytestmark = pytest.mark.localcloud


def test_every_manifest_share_and_page_writes_an_access_record(cloud, owner):
    # Arrange / Act
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,))
    [series, _] = [*seeded.series, None][:2]
    ok(call(cloud, "manifest", {"study_id": seeded.study_key}, owner))
    ok(call(cloud, "series", {"study_id": seeded.study_key, "series_id": series}, owner))
    share = create_share(cloud, owner, seeded.study_key)
    manifest = ok(call(cloud, "share/manifest", {"token": share["token"]},
                       headers={"X-Forwarded-For": "203.0.113.7"}))
    ok(call(cloud, "share/series", {"token": share["token"], "view": manifest["view"],
                                    "series_id": series}))
    ok(call(cloud, f"shares/{share['share_id']}", method="DELETE", user=owner))
    # Assert: the records, as written
    records = sorted(access_records(cloud, owner.uid), key=lambda r: r["at"])
    assert [r["kind"] for r in records] == ["manifest", "series_urls", "share_created",
                                           "share_used", "series_urls", "share_revoked"]
    assert {r["study_key"] for r in records} == {seeded.study_key}
    assert [r["actor"] for r in records] == [owner.uid, owner.uid, owner.uid, share["share_id"],
                                            share["share_id"], owner.uid]
    # One trusted hop: the client's forwarded address, as a front end would append it. The
    # owner's own records keep it; a share recipient's only as network and browser family.
    assert [(r.get("ip"), r.get("user_agent")) for r in records] == \
        [("127.0.0.1", UA)] * 3 + [(None, None)] * 2 + [("127.0.0.1", UA)]
    assert [r.get("ip_prefix") for r in records[3:5]] == ["203.0.113.0/24", "127.0.0.0/24"]
    assert {r.get("browser") for r in records[3:5]} == {access_log.browser_family(UA)}
    assert all(isinstance(r["at"], datetime) for r in records)
    # GET /access: the owner's records, newest first, paged; nobody else's.
    first = ok(call(cloud, "access", method="GET", user=owner, params={"limit": 4}))
    rest = ok(call(cloud, "access", method="GET", user=owner,
                   params={"limit": 4, "page_token": first["next_page_token"]}))
    listed = first["records"] + rest["records"]
    assert [r["kind"] for r in listed] == [r["kind"] for r in reversed(records)]
    assert rest["next_page_token"] is None
    assert all("owner" not in r and r["study_id"] == seeded.study_key for r in listed)
    stranger = cloud.create_user()
    assert ok(call(cloud, "access", method="GET", user=stranger))["records"] == []


def test_share_tokens_and_urls_never_reach_the_logs(cloud, owner):
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,))
    share = create_share(cloud, owner, seeded.study_key)
    manifest = ok(exchange(cloud, share["token"]))
    exchange(cloud, mutated(share["token"]))  # a refused one too
    secret = share["token"].split(".")[1]
    signature = manifest["series"][0]["preview"]["url"].rsplit("X-Goog-Signature=", 1)[1]
    wait_for(lambda: any(line.get("event") == "share_used" and line.get("share") ==
                         share["share_id"] for line in cloud.log_lines("sign-link")),
             what="share_used log line")
    text = cloud.all_log_text()
    assert secret not in text and signature not in text
    own = (cloud.log_dir / f"{cloud.project}.sign-link.log").read_text()
    assert seeded.study_key not in own  # sign-link logs study ids shortened


def test_rules_matrix_for_shares_and_access_records(cloud, owner):
    # Arrange: one share and its access record
    other = cloud.create_user()
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    share = create_share(cloud, owner, seeded.study_key)
    [record] = [r for r in cloud.clients().firestore.collection("access").where(
        filter=FieldFilter("owner", "==", owner.uid)).stream()]
    docs = {"shares": f"shares/{share['share_id']}", "access": f"access/{record.id}"}
    fields = {"owner": {"stringValue": owner.uid}, "revoked": {"booleanValue": False}}
    for collection, path in docs.items():
        # Read: owner only.
        assert_owner_reads_only(cloud, path, owner, other)
        # Queries: one's own, yes; someone else's, no.
        assert_queries(cloud, owner_query(collection, owner.uid), allowed=(owner,),
                       denied=(other, ANONYMOUS))
        # Writes: nobody, the owner included (append-only, server-written).
        assert_writes_denied(cloud, path, (ANONYMOUS, other, owner), fields,
                             create_in=collection)
    assert cloud.clients().firestore.document(docs["access"]).get().exists
