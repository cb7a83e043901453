"""WADO-RS rendered studies, series and frames (PS3.18 §10.4.1.1.3) through the pinned
``dicomweb-client`` (0.61.2 has ``retrieve_series_rendered`` and
``retrieve_instance_frames_rendered``; it has no ``retrieve_study_rendered``, so the study is
asked for with raw HTTP) and strict multipart reading.

The oracle: a study's or series' rendered parts are, in series and instance order, exactly
the bytes each instance's own ``/rendered`` answers (the one renderer); a rendered frame is
exactly what the preview renderer makes of that frame of the original file, in process.

World: Alice's study of a three-instance CT series (CT_small with its pixels shifted per
instance, so every image differs) and an MR series; a multi-frame MR (emri_small, 10
frames); a 51-instance series (one past the cap).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from pacs.dicom import header as dicom_header
from pacs.dicomweb import rendered
from pacs.indexing import preview
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.dicomweb_helpers import Original, ingest, read_original
from tests.localcloud_fixture import LocalCloud, User
from tests.multipart_strict import boundary_of, parts
from tests.stow_helpers import encoded

pytestmark = pytest.mark.localcloud

PNG, JPEG = "image/png", "image/jpeg"


def copy(name: str, study: str, series: str, number: int, series_number: int,
         shift: int = 0) -> Original:
    """A pydicom test file as a new instance of ``series`` (pixels rolled by ``shift``)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber, ds.SeriesNumber = number, series_number
    if shift:
        ds.PixelData = np.roll(ds.pixel_array, shift, axis=1).tobytes()
    data = encoded(ds)
    return Original(Path(name), data, pydicom.dcmread(io.BytesIO(data)))


class World:
    def __init__(self, cloud: LocalCloud):
        self.cloud, self.url = cloud, cloud.urls["dicomweb"]
        self.alice: User = cloud.create_user(profile=True)
        study, ct_series, mr_series = generate_uid(), generate_uid(), generate_uid()
        self.ct = [copy("CT_small.dcm", study, ct_series, n, 1, shift=17 * n)
                   for n in (1, 2, 3)]
        self.mr = [copy("MR_small.dcm", study, mr_series, 1, 2)]
        self.multiframe = read_original(get_testdata_file("emri_small.dcm"))
        big_study, big_series = generate_uid(), generate_uid()
        self.big = [copy("MR_small.dcm", big_study, big_series, n, 1)
                    for n in range(1, rendered.MAX_RENDERED + 2)]
        ingest(cloud, self.alice, self.ct + self.mr + [self.multiframe] + self.big)

    @property
    def headers(self) -> dict[str, str]:
        return self.alice.headers()

    def client(self):
        from dicomweb_client.api import DICOMwebClient

        return DICOMwebClient(url=self.url, headers=self.headers)

    def get(self, path: str, accept: str | None = None, **params: str) -> requests.Response:
        headers = dict(self.headers, **({"Accept": accept} if accept else {}))
        return requests.get(f"{self.url}/{path}", headers=headers, params=params, timeout=120)


def study_path(o: Original) -> str:
    return f"studies/{o.ds.StudyInstanceUID}"


def series_path(o: Original) -> str:
    return f"{study_path(o)}/series/{o.ds.SeriesInstanceUID}"


def instance_path(o: Original) -> str:
    return f"{series_path(o)}/instances/{o.ds.SOPInstanceUID}"


def images(resp: requests.Response, media_type: str) -> list[bytes]:
    """The parts of a multipart rendered answer, strictly framed, each ``media_type``."""
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["Content-Type"].startswith(f'multipart/related; type="{media_type}"')
    found = parts(resp.content, boundary_of(resp.headers["Content-Type"]))
    assert [p.content_type for p in found] == [media_type] * len(found)
    return [p.data for p in found]


def decoded(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


@pytest.fixture(scope="module")
def world(cloud: LocalCloud) -> World:
    return World(cloud)


def test_a_study_renders_every_instance_in_order(world):
    ordered = world.ct + world.mr  # series 1 by instance number, then series 2
    for media_type, fmt in ((PNG, "PNG"), (JPEG, "JPEG")):
        got = images(world.get(f"{study_path(world.ct[0])}/rendered",
                               f'multipart/related; type="{media_type}"'), media_type)
        own = [world.get(f"{instance_path(o)}/rendered", media_type).content for o in ordered]
        assert got == own
        assert [decoded(g).format for g in got] == [fmt] * 4
        assert [decoded(g).size for g in got] == [(o.ds.Columns, o.ds.Rows) for o in ordered]
    assert len(set(own)) == 4  # every instance's image differs
    # No Accept (and */*): multipart of JPEG, PS3.18's default rendered type.
    assert len(images(world.get(f"{study_path(world.ct[0])}/rendered"), JPEG)) == 4


def test_a_series_through_dicomweb_client(world):
    client, ds = world.client(), world.ct[0].ds
    png = client.retrieve_series_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                          media_types=(PNG,))
    # One image asked for: the series' first instance (as Orthanc answers).
    assert png == world.get(f"{instance_path(world.ct[0])}/rendered", PNG).content
    assert decoded(png).format == "PNG" and decoded(png).size == (ds.Columns, ds.Rows)
    jpeg = client.retrieve_series_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                           media_types=(JPEG,))
    assert decoded(jpeg).format == "JPEG"
    small = images(world.get(f"{series_path(world.ct[0])}/rendered", None, viewport="32,32"),
                   JPEG)
    assert [decoded(s).size for s in small] == [(32, 32)] * 3


def expected_frame(cloud: LocalCloud, original: Original, number: int) -> bytes:
    """What the preview renderer makes of frame ``number`` of the original file."""
    settings = cloud.settings()
    stream = io.BytesIO(original.data)
    header = dicom_header.read_header(stream, len(original.data),
                                      max_header_bytes=settings.header_max_bytes,
                                      inflate_max_bytes=settings.inflate_max_bytes)
    stream.seek(0)
    return preview.render_preview(stream, header, size=max(original.ds.Rows,
                                                          original.ds.Columns),
                                  frame=number - 1)


def test_frames_render_the_frame_asked_for(world):
    mf = world.multiframe
    ds = mf.ds
    client = world.client()
    frames = {n: client.retrieve_instance_frames_rendered(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [n], media_types=(PNG,))
        for n in (1, 5, 10)}
    for number, data in frames.items():
        assert decoded(data).format == "PNG" and decoded(data).size == (ds.Columns, ds.Rows)
        assert data == expected_frame(world.cloud, mf, number), number
    assert frames[5] != frames[1] != frames[10]
    both = images(world.get(f"{instance_path(mf)}/frames/5,1/rendered",
                            f'multipart/related; type="{PNG}"'), PNG)
    assert both == [frames[5], frames[1]]


@pytest.mark.parametrize("path, accept, status, code", [
    ("multiframe/frames/1,2/rendered", PNG, 406, "not_acceptable"),  # several: multipart
    ("multiframe/frames/1/rendered", "image/gif", 406, "not_acceptable"),
    ("multiframe/frames/11/rendered", PNG, 404, "not_found"),
    ("multiframe/frames/0/rendered", PNG, 400, "bad_frame_list"),
    ("series/rendered", "image/gif", 406, "not_acceptable"),
    ("series/rendered", "application/dicom", 406, "not_acceptable"),
    ("big-series/rendered", None, 400, "too_many_images"),
    ("big-study/rendered", PNG, 400, "too_many_images"),
    ("series/rendered?quality=90", None, 400, "unsupported_query"),
])
def test_refusals(world, path, accept, status, code):
    what, _, rest = path.partition("/")
    base = {"multiframe": instance_path(world.multiframe), "series": series_path(world.ct[0]),
            "big-series": series_path(world.big[0]), "big-study": study_path(world.big[0])}
    resp = world.get(f"{base[what]}/{rest}", accept)
    assert resp.status_code == status, resp.text[:300]
    assert resp.json()["error"] == code


def test_another_users_study_renders_nothing(world):
    bob = world.cloud.create_user(profile=True)
    resp = requests.get(f"{world.url}/{study_path(world.ct[0])}/rendered",
                        headers=bob.headers(), timeout=60)
    assert resp.status_code == 404
