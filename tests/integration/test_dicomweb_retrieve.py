"""WADO-RS study, series and instance retrieve, the study ZIP and DELETE, against the local
cloud with the pinned ``dicomweb-client`` and byte-level checks: what comes back equals the
original files (bytes with the preamble zeroed, datasets as pydicom reads them), the framing
satisfies a strict parser, the ZIP opens with ``unzip`` and holds every instance.

Data and oracle: ``tests/dicomweb_helpers.py`` (the pydicom ``dicomdirtests`` set).
"""

from __future__ import annotations

import io
import secrets
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pacs import ids
from pydicom.data import get_testdata_file

from tests.dicomweb_helpers import dicomdir_files, ingest, read_original, studies_of
from tests.localcloud_fixture import LocalCloud, User
from tests.multipart_strict import boundary_of, first_part, parts

pytestmark = pytest.mark.localcloud

DICOM = 'multipart/related; type="application/dicom"'


class World:
    """Alice owns the five dicomdirtests studies; Bob owns CT_small."""

    def __init__(self, cloud: LocalCloud):
        self.cloud = cloud
        self.alice_files = [read_original(p) for p in dicomdir_files()]
        self.alice_studies = studies_of(self.alice_files)
        self.alice: User = cloud.create_user()
        self.bob: User = cloud.create_user()
        ingest(cloud, self.alice, self.alice_files)
        ingest(cloud, self.bob, [read_original(get_testdata_file("CT_small.dcm"))])
        # The study with the most series and instances.
        self.big = max(self.alice_studies.values(),
                       key=lambda s: (len(s.series), len(s.files)))

    def client(self, user: User) -> DICOMwebClient:
        return DICOMwebClient(url=self.cloud.urls["dicomweb"], headers=user.headers())

    def url(self, *uids: str) -> str:
        return url(self.cloud, *uids)

    def get(self, user: User, *uids: str, accept: str | None = None, **kw) -> requests.Response:
        return get(self.cloud, user, *uids, accept=accept, **kw)


def url(cloud: LocalCloud, *uids: str) -> str:
    """The retrieve URL of a study, series or instance."""
    names = ("studies", "series", "instances")
    return cloud.urls["dicomweb"] + "".join(
        f"/{n}/{u}" for n, u in zip(names, uids, strict=False))


def get(cloud: LocalCloud, user: User, *uids: str, accept: str | None = None,
        **kw) -> requests.Response:
    headers = dict(user.headers())
    if accept is not None:
        headers["Accept"] = accept
    return requests.get(url(cloud, *uids), headers=headers, timeout=120, **kw)


@pytest.fixture(scope="module")
def world(cloud: LocalCloud) -> World:
    return World(cloud)


def stored(original_bytes: bytes) -> bytes:
    """What the store keeps: the original with its preamble zeroed (CVE-2019-11687)."""
    return b"\0" * 128 + original_bytes[128:]


def by_sop(datasets) -> dict[str, pydicom.Dataset]:
    return {ds.SOPInstanceUID: ds for ds in datasets}


def test_retrieve_study_and_series_equal_the_originals(world):
    client = world.client(world.alice)
    study = world.big
    got = by_sop(client.retrieve_study(study.uid))
    want = by_sop(o.ds for o in study.files)
    assert got.keys() == want.keys()
    for sop, ds in want.items():
        assert got[sop] == ds  # every element, pixel data included
        assert got[sop].file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    for series_uid, files in study.series.items():
        got = by_sop(client.retrieve_series(study.uid, series_uid))
        assert got == by_sop(o.ds for o in files)
    one = study.files[-1].ds
    assert client.retrieve_instance(study.uid, one.SeriesInstanceUID,
                                    one.SOPInstanceUID) == one


def test_study_framing_is_strict_and_in_viewing_order(world):
    study = world.big
    resp = world.get(world.alice, study.uid, accept=DICOM)
    assert resp.status_code == 200, resp.text
    assert "Content-Length" not in resp.headers  # streamed (chunked), not buffered
    boundary = boundary_of(resp.headers["Content-Type"])
    assert resp.headers["Content-Type"] == f"{DICOM}; boundary={boundary}"
    body = resp.content
    # Cornerstone's view: the body starts with the boundary; the first part is an instance.
    first = first_part(body, boundary)
    assert first.content_type == ("application/dicom; transfer-syntax="
                                  + study.files[0].ds.file_meta.TransferSyntaxUID)
    got = parts(body, boundary)
    originals = {o.ds.SOPInstanceUID: o for o in study.files}
    assert len(got) == len(originals)
    order = []
    for part in got:
        ds = pydicom.dcmread(io.BytesIO(part.data))
        original = originals[ds.SOPInstanceUID]
        assert part.data == stored(original.data)
        assert part.content_type.endswith(ds.file_meta.TransferSyntaxUID)
        order.append((int(ds.SeriesNumber or 0), int(ds.InstanceNumber or 0)))
    # Series by number, then instances by number.
    series_order = [o[0] for o in order]
    assert series_order == sorted(series_order)
    for number in set(series_order):
        inside = [o[1] for o in order if o[0] == number]
        assert inside == sorted(inside)


@pytest.mark.parametrize("accept, status", [
    ("application/json", 406),
    (f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.50", 406),
    ('multipart/related; type="application/octet-stream"', 406),
    ("*/*;q=0", 406),
    (f'{DICOM}; transfer-syntax="1.2', 400),
    (f"{DICOM}; transfer-syntax=*", 200),
    ("application/json, */*;q=0.1", 200),
])
def test_accept_negotiation(world, accept, status):
    resp = world.get(world.alice, world.big.uid, accept=accept)
    assert resp.status_code == status, resp.text
    if status == 406:
        assert resp.json()["error"] == "not_acceptable"
        assert "1.2.840.10008.1.2.1" in resp.json()["message"]
    if status == 400:
        assert resp.json()["error"] == "bad_accept"


def unzip(tmp_path: Path, data: bytes) -> dict[str, bytes]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    archive = tmp_path / "study.zip"
    archive.write_bytes(data)
    tested = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, text=True,
                            check=False)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout
    out = tmp_path / "out"
    subprocess.run(["unzip", "-q", str(archive), "-d", str(out)], check=True)
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_study_zip_opens_with_unzip_and_holds_every_instance(world, tmp_path):
    study = world.big
    resp = world.get(world.alice, study.uid,
                     accept="application/zip, multipart/related;q=0.5", stream=True)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/zip"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="study-')
    assert "Content-Length" not in resp.headers
    members = unzip(tmp_path, b"".join(resp.iter_content(65536)))
    want = {f"{o.ds.SeriesInstanceUID}/{o.ds.SOPInstanceUID}.dcm": stored(o.data)
            for o in study.files}
    assert members == want
    # a series as a ZIP too; multipart stays the default
    series_uid, files = next(iter(study.series.items()))
    resp = world.get(world.alice, study.uid, series_uid, accept="application/zip")
    assert len(unzip(tmp_path / "s", resp.content)) == len(files)
    assert world.get(world.alice, study.uid, accept="application/zip;q=0.5, */*").headers[
        "Content-Type"].startswith("multipart/related")


def test_another_users_study_is_404_like_an_unknown_one(world):
    ds = world.big.files[0].ds
    for uids in ((ds.StudyInstanceUID,), (ds.StudyInstanceUID, ds.SeriesInstanceUID),
                 ("1.2.3.4",), (ds.StudyInstanceUID, "1.2.3"), ("not-a-uid",)):
        for accept in (DICOM, "application/zip"):
            resp = world.get(world.bob, *uids, accept=accept)
            assert resp.status_code == 404, (uids, resp.text)
            assert resp.json()["error"] == "not_found"
    assert requests.get(world.url(ds.StudyInstanceUID), timeout=30).status_code == 401


def processing_upload(cloud: LocalCloud, uid: str, study_key: str) -> str:
    """An upload record still processing whose result points at the study."""
    fs = cloud.clients().firestore
    upload_id = secrets.token_hex(16)
    ref = fs.collection("uploads").document(upload_id)
    ref.set({"owner": uid, "filename": "cd.zip", "size": 1, "status": "processing",
             "object": ids.upload_object(uid, upload_id), "counts_toward_quota": True,
             "created_at": datetime.now(UTC)})
    ref.collection("files").document("000000").set(
        {"owner": uid, "upload_id": upload_id, "index": 0, "name": "f0", "status": "stored",
         "study_key": study_key})
    return upload_id


def test_delete_study(cloud):
    carol, dave = cloud.create_user(), cloud.create_user()
    originals = [read_original(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")]
    ingest(cloud, carol, originals)
    ct, mr = (o.ds.StudyInstanceUID for o in originals)
    # Someone else's, unknown and malformed UIDs: the same 404, nothing deleted.
    for user, uid in ((dave, ct), (carol, "1.2.3.4"), (carol, "x")):
        resp = requests.delete(url(cloud, uid), headers=user.headers(), timeout=60)
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    assert get(cloud, carol, ct).status_code == 200
    resp = requests.delete(url(cloud, ct), headers=carol.headers(), timeout=120)
    assert resp.status_code == 200, resp.text
    assert resp.json()["deletion"]["status"] == "completed"
    assert get(cloud, carol, ct).status_code == 404
    assert DICOMwebClient(url=cloud.urls["dicomweb"], headers=carol.headers()).search_for_studies(
        search_filters={"StudyInstanceUID": ct}) == []
    # Again: the record of the deletion.
    again = requests.delete(url(cloud, ct), headers=carol.headers(), timeout=120)
    assert again.status_code == 200 and again.json()["deletion"]["status"] == "completed"
    # An upload of the study still processing: accepted, finishing by itself.
    key = ids.study_key(cloud.settings().hash_key, carol.uid, mr)
    busy = processing_upload(cloud, carol.uid, key)
    resp = requests.delete(url(cloud, mr), headers=carol.headers(), timeout=120)
    assert resp.status_code == 202, resp.text
    assert resp.json()["deletion"]["waiting_for"] == "upload"
    cloud.clients().firestore.collection("uploads").document(busy).update(
        {"status": "complete"})
    done = requests.delete(url(cloud, mr), headers=carol.headers(), timeout=120)
    assert done.status_code == 200 and done.json()["deletion"]["status"] == "completed"
    assert get(cloud, carol, mr).status_code == 404
