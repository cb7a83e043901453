"""The owner's preview of a de-identified share (issue 16): ``POST /links/shares/preview``
says, before any copy is made, how many instances the copy would hold and which would be
left out and why (burned-in annotation, ultrasound, secondary capture), judged from the
stored headers as the copy judges them; the share then made leaves out exactly those.

The study is real files from pydicom's test data, put into one study: CT_small, an
ultrasound (US1_J2KR), a secondary capture (SC_rgb_jpeg_dcmtk) and MR_small marked
BurnedInAnnotation YES.
"""

from __future__ import annotations

import io

import pydicom
import pytest
from pacs import ids
from pydicom.data import get_testdata_file

from tests.dicomweb_helpers import Original, ingest, read_original
from tests.privacy_helpers import ok, sign_link

pytestmark = pytest.mark.localcloud


def _into_study(name: str, study_uid: str, burned_in: bool = False) -> Original:
    original = read_original(get_testdata_file(name))
    ds = original.ds
    ds.StudyInstanceUID = study_uid
    ds.PatientName, ds.PatientID = "Preview^Patient", "PREVIEW-1"
    if burned_in:
        ds.BurnedInAnnotation = "YES"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return Original(original.path, out.getvalue(), pydicom.dcmread(io.BytesIO(out.getvalue())))


def test_the_preview_names_what_the_copy_leaves_out_and_makes_nothing(cloud):
    owner = cloud.create_user(profile=True)
    ct = read_original(get_testdata_file("CT_small.dcm"))
    study_uid = ct.ds.StudyInstanceUID
    files = [_into_study("CT_small.dcm", study_uid),
             _into_study("US1_J2KR.dcm", study_uid),
             _into_study("SC_rgb_jpeg_dcmtk.dcm", study_uid),
             _into_study("MR_small.dcm", study_uid, burned_in=True)]
    ingest(cloud, owner, files)
    key = ids.study_key(cloud.settings().hash_key, owner.uid, study_uid)

    preview = ok(sign_link(cloud, "shares/preview", owner, {"study_id": key}))
    assert preview == {"study_id": key, "instances": 4, "copied": 1, "fits": True,
                       "left_out": {"ultrasound": 1, "secondary_capture": 1,
                                    "burned_in_annotation": 1}}
    # Nothing was made: no share, no copy object.
    assert ok(sign_link(cloud, "shares", owner, method="GET"))["shares"] == []
    storage = cloud.clients().storage
    assert list(storage.list_blobs(cloud.buckets["derived"], prefix=f"shares/{owner.uid}/")) == []

    made = ok(sign_link(cloud, "shares", owner, {"study_id": key, "deidentified": True}))
    assert made["copied"] == preview["copied"] and made["left_out"] == preview["left_out"]

    # Another user's study, or none: 404, as everywhere.
    other = cloud.create_user(profile=True)
    assert sign_link(cloud, "shares/preview", other, {"study_id": key}).status_code == 404
    assert sign_link(cloud, "shares/preview", owner, {}).status_code in (400, 404)


def test_a_study_over_the_copy_bounds_is_refused_with_the_bounds_stated(cloud):
    # Arrange: a real study whose one instance document records more bytes than a copy holds
    from google.cloud.firestore_v1.base_query import FieldFilter
    from pacs.links.deidentified import MAX_COPY_BYTES, MAX_INSTANCES

    owner = cloud.create_user(profile=True)
    ct = _into_study("CT_small.dcm", pydicom.uid.generate_uid())
    ingest(cloud, owner, [ct])
    key = ids.study_key(cloud.settings().hash_key, owner.uid, ct.ds.StudyInstanceUID)
    fs = cloud.clients().firestore
    [doc] = fs.collection_group("instances").where(
        filter=FieldFilter("owner", "==", owner.uid)).get()
    doc.reference.update({"size": MAX_COPY_BYTES + 1})
    # Act
    preview = ok(sign_link(cloud, "shares/preview", owner, {"study_id": key}))
    # Assert: what the web client states (it once said 300 images and 256 MiB, a run's bound)
    assert preview == {"study_id": key, "instances": None, "copied": 0, "left_out": {},
                       "fits": False, "max_instances": MAX_INSTANCES,
                       "max_gib": MAX_COPY_BYTES >> 30}
