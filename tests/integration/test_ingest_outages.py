"""Ingest through outages of the services it writes to (issue 14, "prove it under real
concurrency and faults"): the Firestore emulator, then the storage emulator, unreachable
for 10 s while an archive is processed, for one stack's processes only (a proxy between
them and the emulator is cut, so other stacks sharing the emulator are not disturbed);
Pub/Sub redelivering checkpoint messages whose ack deadline ran out while their first
delivery was still retrying; two devices uploading the same study at once. Afterwards
every instance is stored and indexed exactly once, nothing is orphaned and the counts are
right.

The stack checkpoints archives every second (``PACS_EVENT_DEADLINE_SECONDS=1``), so much of
an archive travels as Pub/Sub messages, and its router's subscriptions have a 10 s ack
deadline that is never extended (``ack_deadline_seconds``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from tests.fault_proxy import TcpProxy
from tests.ingest_helpers import (
    file_results,
    instance_docs,
    instance_objects,
    make_instances,
    upload_bytes,
    wait_final,
    zip_bytes,
)
from tests.localcloud_fixture import LocalCloud, start_test_cloud, stop_test_cloud, wait_for

pytestmark = pytest.mark.localcloud

OUTAGE_SECONDS = 10


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """A stack whose functions reach Firestore and storage through proxies the tests cut."""
    from localcloud import config

    ports = config.emulator_ports()
    proxies = {"firestore": TcpProxy(("127.0.0.1", ports.firestore)),
               "storage": TcpProxy(("127.0.0.1", ports.storage))}
    saved = dict(os.environ)
    cloud = start_test_cloud(tmp_path_factory.mktemp("outages"), ack_deadline_seconds=10,
                             extra_env={
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{proxies['firestore'].port}",
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{proxies['storage'].port}",
        "PACS_EVENT_DEADLINE_SECONDS": "1"})
    yield cloud, proxies
    stop_test_cloud(cloud)
    for proxy in proxies.values():
        proxy.close()
    os.environ.clear()
    os.environ.update(saved)


def unreachable_for(proxy: TcpProxy, seconds: float) -> None:
    """The proxied service away for ``seconds``, then back."""
    proxy.cut()
    try:
        time.sleep(seconds)
    finally:
        proxy.restore()


def archive_under_way(cloud: LocalCloud, user: Any, count: int, name: str) -> str:
    """Upload an archive of ``count`` instances in 2 series; return once ingest has
    recorded 10 results."""
    upload_id = upload_bytes(cloud, user, zip_bytes(make_instances(count, series=2)), name,
                             "application/zip")
    wait_for(lambda: len(file_results(cloud, upload_id)) >= 10, timeout=120,
             what="ingest to be under way")
    return upload_id


def assert_complete(cloud: LocalCloud, user: Any, upload_id: str, count: int) -> None:
    """The upload complete with every instance stored, then indexed once, consistently."""
    record = wait_final(cloud, upload_id, timeout=300)
    assert record["status"] == "complete", record
    assert record["counts"]["stored"] == count and record["counts"]["total"] == count
    wait_for(lambda: len(instance_docs(cloud, user.uid)) == count, timeout=180,
             what="every instance indexed")
    assert_consistent(cloud, user.uid, count)


def assert_consistent(cloud: LocalCloud, uid: str, expected: int) -> None:
    """Every instance stored once and indexed once, under a study and series that exist,
    with settled counts that match; no result says stored without its object."""
    objects = {b.name for b in instance_objects(cloud, uid)}
    docs = instance_docs(cloud, uid)
    assert len(objects) == expected, f"{len(objects)} objects for {expected} instances"
    assert Counter(d["object"] for d in docs) == Counter(objects), "documents != objects"
    assert len({d["SOPInstanceUID"] for d in docs}) == expected
    fs = cloud.clients().firestore
    by_series = Counter((d["study_key"], d["series_key"]) for d in docs)
    for (study, series), count in by_series.items():
        assert fs.collection("studies").document(study).get().exists, "orphan instances"
        ref = fs.collection("studies").document(study).collection("series").document(series)
        wait_for(lambda r=ref, c=count: (r.get().to_dict() or {}).get("instance_count") == c,
                 timeout=120, what="the series counts to settle")
    stored = [s.to_dict() for s in fs.collection_group("files").where(
        filter=FieldFilter("owner", "==", uid)).where(
        filter=FieldFilter("status", "==", "stored")).stream()]
    named = {d["object"] for d in docs}
    for result in stored:
        assert any(n.endswith(f"/{result['instance_key']}.dcm") for n in named), result


@pytest.mark.parametrize("service", ["firestore", "storage"])
def test_an_archive_survives_a_service_unreachable_for_ten_seconds(proxied, service):
    # Arrange
    cloud, proxies = proxied
    user = cloud.create_user()
    upload_id = archive_under_way(cloud, user, 120, "outage.zip")
    # Act: the service goes away once ingest is under way, and comes back 10 s later
    unreachable_for(proxies[service], OUTAGE_SECONDS)
    # Assert: retried through the outage, nothing lost, nothing twice
    assert_complete(cloud, user, upload_id, 120)


def test_messages_redelivered_after_their_ack_deadline_converge(proxied):
    # Arrange: a checkpointed archive; Firestore goes away for 20 s, so deliveries retry
    # (up to ~30 s) past the 10 s ack deadline and Pub/Sub hands the same messages out again
    cloud, proxies = proxied
    user = cloud.create_user()
    upload_id = archive_under_way(cloud, user, 200, "acks.zip")
    # Act
    unreachable_for(proxies["firestore"], 2 * OUTAGE_SECONDS)
    # Assert: the result is as if each message had been delivered once, and some message was
    # received again while its first delivery was running. The router's log is read once
    # the upload is complete: read when the cut ended, it could not count a redelivery
    # Pub/Sub made after that (the suspected cause of this assertion failing at load
    # average 50-110, where everything, the emulator's redelivery included, runs late).
    assert_complete(cloud, user, upload_id, 200)
    received = Counter(line["ce_id"] for line in cloud.log_lines("router")
                       if line.get("message") == "received")
    assert any(n >= 2 for n in received.values()), "no message was redelivered"


def test_two_devices_uploading_the_same_study_at_once(proxied):
    # Arrange: one study of 40 instances; each device sends it as single files, in
    # opposite orders, at the same time
    cloud, _ = proxied
    user = cloud.create_user()
    members = make_instances(40)
    upload_ids: list[str] = []
    lock = threading.Lock()

    def device(files):
        for name, data in files:
            upload_id = upload_bytes(cloud, user, data, name, "application/dicom")
            with lock:
                upload_ids.append(upload_id)

    threads = [threading.Thread(target=device, args=(order,))
               for order in (members, list(reversed(members)))]
    # Act
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = [wait_final(cloud, i, timeout=240) for i in upload_ids]
    # Assert: each instance stored by one upload and a duplicate in the other
    outcomes = Counter(s for r in records for s, n in r["counts"].items() if n and s != "total")
    assert outcomes == {"stored": 40, "duplicate": 40}, outcomes
    wait_for(lambda: len(instance_docs(cloud, user.uid)) == 40, timeout=180,
             what="every instance indexed")
    assert_consistent(cloud, user.uid, 40)
