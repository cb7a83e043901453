"""3D Slicer's DICOMweb import, as docs/dicomweb.md tells a person to run it, against the real
functions. Slicer's ``DICOMUtils.importFromDICOMWeb(dicomWebEndpoint, studyInstanceUID,
accessToken=...)`` is a fixed sequence of ``dicomweb-client`` calls with the token as a bearer:
``search_for_series`` of the study, ``retrieve_series_metadata`` per series (to skip series
already in its database), ``iter_series``, and ``save_as`` of each instance into its DICOM
database folder. Slicer itself (a Qt desktop application) is not on this machine; this test
makes exactly those calls with the pinned client and an API key, then reads the saved files
as Slicer's importer would (pydicom)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from tests.keys_helpers import KeysWorld, bearer, new_key

pytestmark = pytest.mark.localcloud

SERIES_UID = "0020000E"
SOP_UID = "00080018"


@pytest.fixture(scope="module")
def world(cloud) -> KeysWorld:
    return KeysWorld(cloud)


def slicer_import(endpoint: str, study_uid: str, access_token: str, folder: Path) -> list[Path]:
    """The calls of Slicer's importFromDICOMWeb (Slicer 5.x, Modules/Scripted/DICOMLib)."""
    client = DICOMwebClient(url=endpoint, headers=bearer(access_token))
    saved: list[Path] = []
    for series in client.search_for_series(study_instance_uid=study_uid):
        series_uid = series[SERIES_UID]["Value"][0]
        metadata = client.retrieve_series_metadata(study_instance_uid=study_uid,
                                                   series_instance_uid=series_uid)
        assert all(m[SOP_UID]["Value"][0] for m in metadata)  # how Slicer skips known series
        for instance in client.iter_series(study_instance_uid=study_uid,
                                           series_instance_uid=series_uid):
            path = folder / f"{len(saved)}.dcm"
            instance.save_as(path)
            saved.append(path)
    return saved


def test_slicer_imports_a_study_with_an_api_key(world, tmp_path):
    # Arrange
    key = new_key(world.cloud, world.alice, "read", name="3D Slicer")["key"]

    # Act
    saved = slicer_import(world.url, world.mr.ds.StudyInstanceUID, key, tmp_path)

    # Assert: the study's one instance, equal to the original file's dataset and pixels.
    assert len(saved) == 1
    imported = pydicom.dcmread(saved[0])
    assert imported.SOPInstanceUID == world.mr.ds.SOPInstanceUID
    assert imported.PatientName == world.mr.ds.PatientName
    assert imported.pixel_array.tobytes() == world.mr.ds.pixel_array.tobytes()


def test_slicer_with_another_users_key_imports_nothing(world, tmp_path):
    bobs_key = new_key(world.cloud, world.bob, "read", name="3D Slicer")["key"]

    saved = slicer_import(world.url, world.mr.ds.StudyInstanceUID, bobs_key, tmp_path)

    assert saved == []  # Alice's MR study is unknown to Bob: no series to import
