"""An Orthanc peer of our DICOMweb, as docs/dicomweb.md (*Connecting an Orthanc peer*) tells a
person to set one up: Debian's Orthanc with its DICOMweb plugin, the docs' ``DicomWeb``
section with our URL and an API key as ``HttpHeaders``; then, through Orthanc's REST API,
QIDO of our studies, a retrieve into Orthanc (the instances it stored equal the originals),
STOW from Orthanc with a read-write key (found by our QIDO) and with a read-only key
(refused, nothing stored).

The real clients on both sides: Orthanc's plugin calls our function over loopback, and
dicomweb-client checks what arrived. Orthanc process: ``tests/orthanc_peer.py``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import tempfile
from pathlib import Path

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file

from tests import orthanc_peer
from tests.dicomweb_helpers import (
    Original,
    dicomdir_files,
    ingest,
    read_original,
    studies_of,
    value,
)
from tests.keys_helpers import bearer, new_key
from tests.localcloud_fixture import LocalCloud, User, wait_for

pytestmark = [
    pytest.mark.localcloud,
    pytest.mark.skipif(not orthanc_peer.installed(), reason=(
        "Debian's orthanc and orthanc-dicomweb are not installed: `make install` installs "
        "them (apt-get); without them this machine cannot run an Orthanc peer")),
]

STUDY_UID, SOP_UID = "0020000D", "00080018"


class PeerWorld:
    """One account with the dicomdir test studies and a JPEG 2000 study, two API keys, and
    an Orthanc configured from the docs with the read-write key (server ``pacs``) and the
    same entry with the read-only key (server ``pacs-read``)."""

    def __init__(self, cloud: LocalCloud, workdir: Path):
        self.cloud = cloud
        self.originals = [read_original(p) for p in dicomdir_files()]
        self.originals.append(read_original(get_testdata_file("JPEG2000.dcm")))
        self.studies = studies_of(self.originals)
        self.user: User = cloud.create_user(profile=True)
        ingest(cloud, self.user, self.originals)
        self.rw_key = new_key(cloud, self.user, "read-write", name="Orthanc peer")["key"]
        self.read_key = new_key(cloud, self.user, "read", name="Orthanc peer (read)")["key"]
        config = orthanc_peer.peer_config(cloud.urls["dicomweb"], self.rw_key)
        servers = config["DicomWeb"]["Servers"]
        servers["pacs-read"] = copy.deepcopy(servers["pacs"])
        servers["pacs-read"]["HttpHeaders"]["Authorization"] = f"Bearer {self.read_key}"
        self.orthanc = orthanc_peer.OrthancPeer(workdir, config)

    def ours(self) -> DICOMwebClient:
        return DICOMwebClient(url=self.cloud.urls["dicomweb"], headers=bearer(self.rw_key))

    def qido(self, server: str, uri: str, tag: str, **arguments: str) -> set[str]:
        """Orthanc's ``/qido`` of ``uri`` on ``server``: the values of ``tag`` in its answer
        (the plugin answers in its own JSON: per tag ``Name``, ``vr``, ``Value`` as text)."""
        resp = self.orthanc.post(f"/dicom-web/servers/{server}/qido",
                                 {"Uri": uri, "Arguments": arguments})
        assert resp.status_code == 200, (resp.status_code, resp.text, self.orthanc.log_tail())
        return {item[tag]["Value"] for item in resp.json()}

    def stored_objects(self) -> list[str]:
        """Names of the account's instance objects in our instances bucket."""
        bucket = self.cloud.clients().storage.bucket(self.cloud.buckets["instances"])
        return sorted(b.name for b in bucket.list_blobs(prefix=f"{self.user.uid}/"))

    def orthanc_instances_of(self, study_uid: str) -> dict[str, bytes]:
        """SOP Instance UID → the file Orthanc stored, for one study in Orthanc."""
        found = self.orthanc.post("/tools/lookup", data=study_uid.encode()).json()
        study = next(r["ID"] for r in found if r["Type"] == "Study")
        out = {}
        for inst in self.orthanc.get(f"/studies/{study}/instances").json():
            data = self.orthanc.get(f"/instances/{inst['ID']}/file").content
            out[pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID] = data
        return out

    def put_into_orthanc(self, original: Original) -> str:
        """Store a file in Orthanc (as a modality would); its Orthanc instance id."""
        resp = self.orthanc.post("/instances", data=original.data)
        assert resp.status_code == 200, resp.text
        return resp.json()["ID"]


@pytest.fixture(scope="module")
def world(cloud: LocalCloud):
    with tempfile.TemporaryDirectory(prefix="orthanc-peer-") as tmp:
        w = PeerWorld(cloud, Path(tmp))
        w.orthanc.start()
        try:
            yield w
        finally:
            w.orthanc.stop()


def _pixel_hash(data: bytes) -> str:
    return hashlib.sha256(pydicom.dcmread(io.BytesIO(data)).PixelData).hexdigest()


def test_orthanc_searches_our_studies_with_the_api_key(world):
    assert world.qido("pacs", "/studies", STUDY_UID) == set(world.studies)
    assert world.qido("pacs", "/studies", STUDY_UID, PatientName="Doe^P*") == {
        uid for uid, s in world.studies.items() if str(s.first.PatientName) == "Doe^Peter"}
    big = max(world.studies.values(), key=lambda s: len(s.files))
    assert world.qido("pacs", f"/studies/{big.uid}/series", "0020000E") == set(big.series)
    series = next(iter(big.series))
    assert world.qido("pacs", f"/studies/{big.uid}/series/{series}/instances", SOP_UID) == {
        f.ds.SOPInstanceUID for f in big.series[series]}
    assert world.qido("pacs", "/studies", STUDY_UID, PatientName="Nobody*") == set()


def test_a_study_retrieved_into_orthanc_equals_the_originals(world):
    big = max(world.studies.values(), key=lambda s: len(s.files))
    jpeg2000 = world.studies[world.originals[-1].ds.StudyInstanceUID]
    for study in (big, jpeg2000):
        resp = world.orthanc.post("/dicom-web/servers/pacs/retrieve",
                                  {"Resources": [{"Study": study.uid}]})
        assert resp.status_code == 200, (resp.text, world.orthanc.log_tail())
        stored = world.orthanc_instances_of(study.uid)
        originals = {f.ds.SOPInstanceUID: f for f in study.files}
        assert set(stored) == set(originals)
        for sop, data in stored.items():
            # The same file after the preamble, which ingest zeroes (CVE-2019-11687).
            assert data[128:] == originals[sop].data[128:], sop
            assert _pixel_hash(data) == _pixel_hash(originals[sop].data), sop


def test_orthanc_stores_into_our_account_with_a_read_write_key(world):
    original = read_original(get_testdata_file("CT_small.dcm"))
    orthanc_id = world.put_into_orthanc(original)
    resp = world.orthanc.post("/dicom-web/servers/pacs/stow", {"Resources": [orthanc_id]})
    assert resp.status_code == 200, (resp.text, world.orthanc.log_tail())
    sop = original.ds.SOPInstanceUID
    client = world.ours()

    def found():
        return client.search_for_instances(search_filters={"SOPInstanceUID": sop})

    hits = wait_for(found, timeout=60, what="the instance sent by Orthanc to be searchable")
    assert [value(h, SOP_UID) for h in hits] == [sop]
    assert value(hits[0], STUDY_UID) == original.ds.StudyInstanceUID
    back = client.retrieve_instance(original.ds.StudyInstanceUID,
                                    original.ds.SeriesInstanceUID, sop)
    assert back.PixelData == original.ds.PixelData


def test_a_read_only_key_cannot_store_through_orthanc(world):
    original = read_original(get_testdata_file("MR_small.dcm"))
    orthanc_id = world.put_into_orthanc(original)
    before = world.stored_objects()
    resp = world.orthanc.post("/dicom-web/servers/pacs-read/stow", {"Resources": [orthanc_id]})
    # Orthanc reports the remote refusal as its own error, the status in its log.
    assert resp.status_code >= 400, resp.text
    assert "received HTTP status 403" in world.orthanc.log_tail(20000), resp.text
    assert world.stored_objects() == before
    assert world.ours().search_for_instances(
        search_filters={"SOPInstanceUID": original.ds.SOPInstanceUID}) == []
    refusals = [line for line in world.cloud.log_lines("dicomweb")
                if line.get("code") == "insufficient_scope"]
    assert refusals, "our function did not log the refused STOW as insufficient_scope"
