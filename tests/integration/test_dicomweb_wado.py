"""WADO-RS metadata, frames, bulk data, rendered and thumbnail through the real
``dicomweb-client`` and raw HTTP, over pydicom test files ingested through the upload path
(the settle step builds each series' metadata and frame index).

Answers equal what pydicom reads from the original files: metadata equals ``to_json_dict``
for every non-bulk element (bulk ones are BulkDataURIs that resolve); frame bytes equal
pydicom's frames for native, multi-frame native, JPEG baseline, JPEG 2000, JPEG-LS, RLE and
deflated instances. The multipart framing is checked byte for byte by a strict reader.
"""

from __future__ import annotations

import io

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames
from pydicom.pixels.utils import get_expected_length

from tests.dicomweb_helpers import Original, ingest, read_original
from tests.localcloud_fixture import LocalCloud, User
from tests.multipart_strict import boundary_of, first_part, parts

pytestmark = pytest.mark.localcloud

# Files sharing UIDs go to different users (each user's copy is their own).
OWNERS = {
    "a": ["CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm", "image_dfl.dcm",
          "emri_small_RLE.dcm"],
    "b": ["MR_small_jpeg_ls_lossless.dcm", "emri_small.dcm"],
    "c": ["MR_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm"],
    "d": ["waveform_ecg.dcm"],  # no pixel data; bulk data nested in a sequence
}
ALL = [n for names in OWNERS.values() for n in names]
IMAGES = [n for n in ALL if n != "waveform_ecg.dcm"]
NATIVE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99")


class World:
    def __init__(self, cloud: LocalCloud):
        self.cloud = cloud
        self.users: dict[str, User] = {}
        self.files: dict[str, tuple[str, Original]] = {}
        for owner, names in OWNERS.items():
            user = self.users[owner] = cloud.create_user()
            originals = [read_original(get_testdata_file(n)) for n in names]
            ingest(cloud, user, originals)
            for name, original in zip(names, originals, strict=True):
                self.files[name] = (owner, original)
        self.url = cloud.urls["dicomweb"]

    def client(self, name: str) -> DICOMwebClient:
        return DICOMwebClient(url=self.url, headers=self.users[self.files[name][0]].headers())

    def original(self, name: str) -> Original:
        return self.files[name][1]

    def instance_url(self, name: str) -> str:
        ds = self.original(name).ds
        return (f"{self.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")

    def get(self, name: str, path: str, **headers: str) -> requests.Response:
        owner = self.users[self.files[name][0]]
        return requests.get(self.instance_url(name) + path,
                            headers={**owner.headers(), **headers}, timeout=60)


@pytest.fixture(scope="module")
def world(cloud: LocalCloud) -> World:
    return World(cloud)


def split_bulk(node: dict) -> tuple[dict, dict]:
    """(non-bulk elements, {tag path: VR} of bulk ones), recursing into sequences."""
    plain, bulk = {}, {}
    for tag, element in node.items():
        if "BulkDataURI" in element:
            bulk[tag] = element["vr"]
        elif element.get("vr") == "SQ":
            items = [split_bulk(i) for i in element.get("Value") or []]
            plain[tag] = {"vr": "SQ", "Value": [i[0] for i in items]}
            bulk.update({f"{tag}/{n}/{k}": v for n, i in enumerate(items)
                         for k, v in i[1].items()})
        else:
            plain[tag] = element
    return plain, bulk


def expected_frames(original: Original) -> list[bytes]:
    ds = original.ds
    count = int(ds.get("NumberOfFrames") or 1)
    if ds.file_meta.TransferSyntaxUID in NATIVE:
        size = get_expected_length(ds, unit="bytes") // count
        return [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]
    return list(generate_frames(ds.PixelData, number_of_frames=count))


@pytest.mark.parametrize("name", ALL)
def test_series_metadata_equals_pydicom(world, name):
    # Arrange
    ds = world.original(name).ds
    reference = pydicom.dcmread(world.original(name).path).to_json_dict(1024, lambda e: "")
    reference.pop("7FE00010", None)

    # Act
    found = world.client(name).retrieve_series_metadata(ds.StudyInstanceUID,
                                                        ds.SeriesInstanceUID)

    # Assert
    item = next(i for i in found if i["00080018"]["Value"] == [ds.SOPInstanceUID])
    plain, bulk = split_bulk(item)
    ref_plain, ref_bulk = split_bulk(reference)
    assert plain == {k: v for k, v in ref_plain.items() if k < "7FE00010"}
    assert {k: v for k, v in bulk.items() if k != "7FE00010"} == ref_bulk
    assert ("BulkDataURI" in item.get("7FE00010", {})) == (name in IMAGES)


def test_instance_and_study_metadata(world):
    name = "SC_rgb_jpeg_dcmtk.dcm"
    ds = world.original(name).ds
    client = world.client(name)

    instance = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                                 ds.SOPInstanceUID)
    study = client.retrieve_study_metadata(ds.StudyInstanceUID)

    assert instance["00080018"]["Value"] == [ds.SOPInstanceUID]
    assert instance["00100010"]["Value"] == [{"Alphabetic": str(ds.PatientName)}]
    assert [i["00080018"]["Value"][0] for i in study] == [ds.SOPInstanceUID]


def test_pixel_data_bulk_uri_resolves_to_the_frames(world):
    for name in ("CT_small.dcm", "JPEG2000.dcm"):
        client = world.client(name)
        # Through dicomweb-client (its Host header has no port): the URI carries the port.
        ds = world.original(name).ds
        item = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                                 ds.SOPInstanceUID)
        uri = item["7FE00010"]["BulkDataURI"]
        assert uri == world.instance_url(name) + "/bulkdata/7FE00010"
        assert client.retrieve_bulkdata(uri) == expected_frames(world.original(name))


@pytest.mark.parametrize(("name", "path", "value"), [
    ("CT_small.dcm", "00431029", lambda ds: ds[0x00431029].value),
    ("waveform_ecg.dcm", "54000100/1/54001010", lambda ds: ds.WaveformSequence[1].WaveformData),
])
def test_other_bulk_data_uris_resolve_to_the_values(world, name, path, value):
    # Act
    item = world.get(name, "/metadata").json()[0]
    steps = path.split("/")
    uri = item[steps[0]]
    for index, tag in zip(steps[1::2], steps[2::2], strict=True):  # item number, then tag
        uri = uri["Value"][int(index)][tag]
    data = world.client(name).retrieve_bulkdata(uri["BulkDataURI"])

    # Assert
    assert uri["BulkDataURI"] == f"{world.instance_url(name)}/bulkdata/{path}"
    assert data == [value(world.original(name).ds)]


@pytest.mark.parametrize("name", IMAGES)
def test_frames_equal_pydicom(world, name):
    # Arrange
    ds = world.original(name).ds
    expected = expected_frames(world.original(name))
    numbers = list(range(1, len(expected) + 1))

    # Act
    frames = world.client(name).retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=numbers)

    # Assert
    assert frames == expected
    if len(expected) > 2:  # a subset, in the order asked for
        picked = world.client(name).retrieve_instance_frames(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
            frame_numbers=[3, 1])
        assert picked == [expected[2], expected[0]]


@pytest.mark.parametrize(("name", "accept", "part_type"), [
    ("CT_small.dcm", 'multipart/related; type="application/octet-stream"',
     "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"),
    ("image_dfl.dcm", "multipart/related; type=application/octet-stream; transfer-syntax=*",
     "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"),
    ("SC_rgb_jpeg_dcmtk.dcm", 'multipart/related; type="image/jpeg"',
     "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"),
    # OHIF's default: compressed frames as octet-stream in their stored syntax.
    ("JPEG2000.dcm", "multipart/related; type=application/octet-stream; transfer-syntax=*",
     "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.91"),
    ("MR_small_jpeg_ls_lossless.dcm", "*/*", "image/jls; transfer-syntax=1.2.840.10008.1.2.4.80"),
    ("MR_small_RLE.dcm", None, "image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5"),
])
def test_frame_framing_is_strict(world, name, accept, part_type):
    # Act
    answer = world.get(name, "/frames/1", **({"Accept": accept} if accept else {}))

    # Assert
    assert answer.status_code == 200, answer.text
    boundary = boundary_of(answer.headers["Content-Type"])
    assert answer.headers["Content-Type"].startswith("multipart/related; type=")
    first = first_part(answer.content, boundary)
    assert first.content_type == part_type
    assert first.data == expected_frames(world.original(name))[0]
    assert len(parts(answer.content, boundary)) == 1


@pytest.mark.parametrize(("path", "accept", "status", "code"), [
    ("/frames/0", None, 400, "bad_frame_list"),
    ("/frames/1,x", None, 400, "bad_frame_list"),
    ("/frames/2", None, 404, "not_found"),
    ("/frames/1", 'multipart/related; type="image/png"', 406, "not_acceptable"),
    ("/frames/1", 'multipart/related; type="application/octet-stream"', 406, "not_acceptable"),
    ("/bulkdata/00100010", None, 404, "not_found"),
    ("/frames/2/rendered", None, 404, "not_found"),  # rendered frames: test_dicomweb_rendered
    ("/frames/1/thumbnail", None, 501, "not_implemented"),
])
def test_frame_refusals(world, path, accept, status, code):
    answer = world.get("SC_rgb_jpeg_dcmtk.dcm", path, **({"Accept": accept} if accept else {}))
    assert (answer.status_code, answer.json()["error"]) == (status, code)


def test_another_users_instance_is_unknown(world):
    intruder = world.users["b"]
    for path in ("/metadata", "/frames/1", "/bulkdata/7FE00010", "/rendered", "/thumbnail"):
        answer = requests.get(world.instance_url("CT_small.dcm") + path,
                              headers=intruder.headers(), timeout=30)
        assert answer.status_code == 404, path


def test_metadata_etag(world):
    name = "CT_small.dcm"
    series_url = world.instance_url(name).rsplit("/instances/", 1)[0] + "/metadata"
    headers = world.users["a"].headers()

    first = requests.get(series_url, headers=headers, timeout=30)
    again = requests.get(series_url, headers={**headers, "If-None-Match": first.headers["ETag"]},
                         timeout=30)
    other = requests.get(series_url, headers={**headers, "If-None-Match": '"nope"'}, timeout=30)

    plain = requests.get(series_url, headers={**headers, "Accept-Encoding": "identity"},
                         timeout=30)

    assert first.status_code == 200 and first.headers["Content-Type"] == "application/dicom+json"
    assert first.headers["Content-Encoding"] == "gzip"  # requests asks for it and decodes it
    assert again.status_code == 304 and not again.content
    assert again.headers["ETag"] == first.headers["ETag"]
    assert other.status_code == 200 and other.json() == first.json()
    assert "Content-Encoding" not in plain.headers and plain.json() == first.json()
    assert plain.headers["ETag"] != first.headers["ETag"]


def test_rendered_and_thumbnail(world):
    grey = world.get("CT_small.dcm", "/rendered")
    as_jpeg = world.get("CT_small.dcm", "/rendered", Accept="image/jpeg")
    colour = world.get("SC_rgb_jpeg_dcmtk.dcm", "/rendered")
    thumb = world.get("CT_small.dcm", "/thumbnail?viewport=64,64")
    refused = world.get("CT_small.dcm", "/rendered", Accept="image/gif")

    assert grey.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(grey.content)).size == (128, 128)
    assert Image.open(io.BytesIO(as_jpeg.content)).format == "JPEG"
    assert colour.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(colour.content)).mode == "RGB"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 64)
    assert refused.status_code == 406


def test_rendered_through_dicomweb_client(world):
    ds = world.original("MR_small_jpeg_ls_lossless.dcm").ds
    client = world.client("MR_small_jpeg_ls_lossless.dcm")

    jpeg = client.retrieve_instance_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                             ds.SOPInstanceUID, media_types=("image/jpeg",))
    png = client.retrieve_instance_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                            ds.SOPInstanceUID, media_types=("image/png",))

    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    picture = Image.open(io.BytesIO(png))
    assert picture.format == "PNG" and picture.size == (ds.Columns, ds.Rows)


def test_series_and_study_thumbnails_are_the_previews(world):
    ds = world.original("CT_small.dcm").ds
    headers = world.users["a"].headers()
    study_url = f"{world.url}/studies/{ds.StudyInstanceUID}"
    series = requests.get(f"{study_url}/series/{ds.SeriesInstanceUID}/thumbnail",
                          headers=headers, timeout=30)
    study = requests.get(f"{study_url}/thumbnail", headers=headers, timeout=30)
    assert series.status_code == study.status_code == 200
    assert series.headers["Content-Type"] == "image/png"
    assert series.content == study.content
    assert Image.open(io.BytesIO(series.content)).size == (256, 256)
