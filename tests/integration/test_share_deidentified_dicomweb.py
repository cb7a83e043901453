"""DICOMweb serves a de-identified share's copy (issue 16): the share's view headers reach
exactly one study, the copy's, under its remapped UIDs, through the pinned
``dicomweb-client`` (QIDO-RS studies, series and instances, nested and at the root; WADO-RS
study, series and instance retrieve, the ZIP, metadata, frames and bulk data; an instance's
rendered image, thumbnail and rendered frames). The bytes of
every answer hold no original identifier (names, IDs, dates, Study/Series/SOP UIDs of the
ingested files); frames equal pydicom's frames of the copy's objects; the original UIDs
answer 404 (or an empty search) to this credential.
"""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pacs.dicom.deidentify import annex_e_tags
from pacs.links import deidentified
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames

from tests.dicomweb_helpers import Original, ingest, read_original
from tests.keys_helpers import open_share, share, share_headers
from tests.privacy_helpers import ok

pytestmark = pytest.mark.localcloud

# A native 10-frame MR and a JPEG-LS MR, each its own study, of one owner.
FILES = ("emri_small.dcm", "MR_small_jpeg_ls_lossless.dcm")
TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC", "UI", "DA", "DT", "AE"}
STUDY, SERIES, SOP = "0020000D", "0020000E", "00080018"


def identifiers(originals: list[Original]) -> set[str]:
    """Every Annex E text value (6+ characters) and instance UID of the originals."""
    table = annex_e_tags()
    found: set[str] = set()

    def visit(_ds, element) -> None:
        if element.VR not in TEXT_VRS or element.value in (None, ""):
            return
        values = element.value if isinstance(element.value, list | pydicom.multival.MultiValue) \
            else [element.value]
        is_uid = element.VR == "UI" and not element.keyword.endswith("ClassUID") \
            and element.keyword != "TransferSyntaxUID"
        if (element.tag.group, element.tag.element) in table or is_uid:
            found.update(str(v).strip() for v in values if len(str(v).strip()) >= 6)

    for original in originals:
        original.ds.walk(visit)
        found.update((original.ds.StudyInstanceUID, original.ds.SeriesInstanceUID,
                      original.ds.SOPInstanceUID))
    assert {"CompressedSamples^MR1", "20000101"} <= found
    return found


class World:
    def __init__(self, cloud):
        self.cloud = cloud
        self.originals = {n: read_original(get_testdata_file(n)) for n in FILES}
        self.owner = cloud.create_user(profile=True)
        ingest(cloud, self.owner, list(self.originals.values()))
        self.secrets = identifiers(list(self.originals.values()))
        self.bodies: list[bytes] = []

    def study_key(self, name: str) -> str:
        from pacs import ids

        return ids.study_key(self.cloud.settings().hash_key, self.owner.uid,
                             self.originals[name].ds.StudyInstanceUID)

    def open(self, name: str) -> tuple[dict, dict[str, str]]:
        created = share(self.cloud, self.owner, self.study_key(name), deidentified=True)
        view = ok(open_share(self.cloud, created["token"]))["view"]
        return created, share_headers(created["token"], view)

    def client(self, headers: dict[str, str]) -> DICOMwebClient:
        """dicomweb-client whose every answer's bytes are kept for the scan."""
        return DICOMwebClient(url=self.cloud.urls["dicomweb"], headers=headers, timeout=120,
                              callback=lambda r, *a, **k: self.bodies.append(r.content))

    def get(self, path: str, headers: dict[str, str], **extra: str) -> requests.Response:
        resp = requests.get(f"{self.cloud.urls['dicomweb']}/{path}", headers={
            **headers, **extra}, timeout=120)
        self.bodies.append(resp.content)
        return resp

    def copy_objects(self, owner_uid: str, share_id: str) -> dict[str, pydicom.Dataset]:
        """The copy's stored objects by SOPInstanceUID (read straight from Storage)."""
        storage = self.cloud.clients().storage
        out = {}
        for blob in storage.list_blobs(self.cloud.buckets["derived"],
                                       prefix=deidentified.prefix(owner_uid, share_id)):
            if blob.name.endswith(".dcm"):
                ds = pydicom.dcmread(io.BytesIO(blob.download_as_bytes()))
                out[ds.SOPInstanceUID] = ds
        return out

    def assert_clean(self) -> None:
        assert self.bodies
        for body in self.bodies:
            for secret in self.secrets:
                assert secret.encode() not in body, secret


@pytest.fixture(scope="module")
def world(cloud) -> World:
    return World(cloud)


def test_a_deidentified_share_serves_its_copy_under_remapped_uids(world):
    created, headers = world.open("emri_small.dcm")
    assert created["copied"] == 1 and created["left_out"] == {}
    copies = world.copy_objects(world.owner.uid, created["share_id"])
    (sop_uid, copy), = copies.items()
    study_uid, series_uid = copy.StudyInstanceUID, copy.SeriesInstanceUID
    original = world.originals["emri_small.dcm"].ds
    assert study_uid != original.StudyInstanceUID and sop_uid != original.SOPInstanceUID
    client = world.client(headers)

    # QIDO-RS: the one study, its series and instance, under the copy's UIDs.
    studies = client.search_for_studies()
    assert [s[STUDY]["Value"][0] for s in studies] == [study_uid]
    assert studies[0]["00201208"]["Value"] == [1]  # NumberOfStudyRelatedInstances
    assert "Value" not in studies[0].get("00100010", {})  # PatientName: emptied
    assert client.search_for_studies(search_filters={"PatientName": "*"}) == studies
    assert [s[SERIES]["Value"][0] for s in client.search_for_series(study_uid)] == [series_uid]
    assert [s[SERIES]["Value"][0] for s in client.search_for_series()] == [series_uid]
    assert client.search_for_series(search_filters={"Modality": "CT"}) == []
    instances = client.search_for_instances(study_uid, series_uid)
    assert [i[SOP]["Value"][0] for i in instances] == [sop_uid]
    assert [i[SOP]["Value"][0] for i in client.search_for_instances()] == [sop_uid]

    # WADO-RS: the retrieved instance is the stored copy, byte for byte its pixels.
    retrieved = client.retrieve_instance(study_uid, series_uid, sop_uid)
    assert retrieved.SOPInstanceUID == sop_uid and retrieved.PatientIdentityRemoved == "YES"
    assert retrieved.PixelData == copy.PixelData
    assert [ds.SOPInstanceUID for ds in client.retrieve_study(study_uid)] == [sop_uid]
    assert [ds.SOPInstanceUID for ds in client.retrieve_series(study_uid, series_uid)] == [
        sop_uid]
    metadata = client.retrieve_study_metadata(study_uid)
    assert [m[SOP]["Value"][0] for m in metadata] == [sop_uid]
    assert client.retrieve_series_metadata(study_uid, series_uid) == metadata
    assert client.retrieve_instance_metadata(study_uid, series_uid, sop_uid) == metadata[0]
    assert metadata[0]["00120062"]["Value"] == ["YES"]  # PatientIdentityRemoved
    # Frames: equal to pydicom's frames of the copy object (10 native frames).
    frame_size = len(copy.PixelData) // 10
    got = client.retrieve_instance_frames(study_uid, series_uid, sop_uid, [1, 5, 10])
    assert got == [copy.PixelData[(n - 1) * frame_size:n * frame_size] for n in (1, 5, 10)]
    # The BulkDataURI of the pixel data resolves (every frame).
    uri = metadata[0]["7FE00010"]["BulkDataURI"]  # its host: the Host header client sent
    uri = world.cloud.urls["dicomweb"] + uri[uri.index("/studies/"):]
    assert study_uid in uri and b"".join(client.retrieve_bulkdata(uri)) == copy.PixelData
    # The study as a ZIP.
    resp = world.get(f"studies/{study_uid}", headers, Accept="application/zip")
    assert resp.status_code == 200, resp.text
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        (member,) = archive.namelist()
        assert member == f"{series_uid}/{sop_uid}.dcm"
        assert pydicom.dcmread(io.BytesIO(archive.read(member))).PixelData == copy.PixelData

    # Rendered: the copy's instance and frames as images; no stored previews of a copy.
    from PIL import Image

    instance_path = f"studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
    for path, size in ((f"{instance_path}/rendered", 64), (f"{instance_path}/thumbnail", 64),
                       (f"{instance_path}/frames/5/rendered", 64)):
        resp = world.get(path, headers, Accept="image/png")
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png", path
        assert Image.open(io.BytesIO(resp.content)).size == (size, size), path
    assert world.get(f"studies/{study_uid}/series/{series_uid}/thumbnail",
                     headers).status_code == 404

    # The original UIDs are not found for this credential; nor a read-only write.
    o_study, o_series, o_sop = (original.StudyInstanceUID, original.SeriesInstanceUID,
                                original.SOPInstanceUID)
    assert client.search_for_studies(search_filters={"StudyInstanceUID": o_study}) == []
    assert client.search_for_series(o_study) == []
    assert client.search_for_instances(o_study, o_series) == []
    for path in (f"studies/{o_study}", f"studies/{o_study}/metadata",
                 f"studies/{o_study}/series/{o_series}/instances/{o_sop}",
                 f"studies/{o_study}/series/{o_series}/instances/{o_sop}/frames/1",
                 f"studies/{study_uid}/series/{o_series}/metadata",
                 f"studies/{study_uid}/series/{series_uid}/instances/{o_sop}",
                 f"studies/{study_uid}/series/{series_uid}/instances/{o_sop}/frames/1",
                 f"studies/{o_study}/series/{o_series}/instances/{o_sop}/rendered"):
        assert world.get(path, headers).status_code == 404, path
    resp = requests.delete(f"{world.cloud.urls['dicomweb']}/studies/{study_uid}",
                           headers=headers, timeout=60)
    assert resp.status_code == 403, resp.text
    world.assert_clean()


def test_encapsulated_frames_of_the_copy_and_revocation_closes_it(world):
    created, headers = world.open("MR_small_jpeg_ls_lossless.dcm")
    (sop_uid, copy), = world.copy_objects(world.owner.uid, created["share_id"]).items()
    client = world.client(headers)
    study_uid, series_uid = copy.StudyInstanceUID, copy.SeriesInstanceUID
    frames = client.retrieve_instance_frames(
        study_uid, series_uid, sop_uid, [1], media_types=(("image/jls", "*"),))
    assert frames == [next(generate_frames(copy.PixelData, number_of_frames=1))]
    (found,) = client.search_for_studies(search_filters={"ModalitiesInStudy": "MR"})
    assert found[STUDY]["Value"] == [study_uid]
    assert client.search_for_studies(search_filters={"PatientName": "CompressedSamples*"}) == []
    world.assert_clean()

    # Another share's copy of the same study has other UIDs; revoking closes DICOMweb too.
    other, other_headers = world.open("MR_small_jpeg_ls_lossless.dcm")
    other_uid = world.client(other_headers).search_for_studies()[0][STUDY]["Value"][0]
    assert other_uid != study_uid
    assert world.get(f"studies/{study_uid}/metadata", other_headers).status_code == 404
    from tests.privacy_helpers import sign_link

    ok(sign_link(world.cloud, f"shares/{created['share_id']}", world.owner, method="DELETE"))
    assert world.get(f"studies/{study_uid}/metadata", headers).status_code == 404
    world.assert_clean()
