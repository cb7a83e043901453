"""The URLs DICOMweb answers hold (QIDO RetrieveURLs, metadata BulkDataURIs, STOW
RetrieveURLs) name the origin the caller used, port included, and resolve, with the pinned
``dicomweb-client`` (which sends ``Host`` without the port): straight at the function and
through the local Hosting stand-in (``localcloud/hosting.py``, ``/dicomweb/**`` rewrite).
The rule itself, with the deployed cases: ``tests/unit/test_dicomweb_service_url.py``.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from localcloud import hosting, stack
from tests.dicomweb_helpers import ingest, read_original
from tests.ingest_helpers import instance_docs, wait_settled
from tests.localcloud_fixture import LocalCloud
from tests.stow_helpers import fresh

pytestmark = pytest.mark.localcloud

RETRIEVE_URL = "00081190"


@pytest.fixture(scope="module")
def world(cloud: LocalCloud):
    user = cloud.create_user(profile=True)
    original = read_original(get_testdata_file("CT_small.dcm"))
    ingest(cloud, user, [original])
    env = cloud.env
    spec = hosting.HostingSpec(
        project=cloud.project, port=stack.free_port(), function_urls=dict(cloud.urls),
        auth_host=env["FIREBASE_AUTH_EMULATOR_HOST"],
        firestore_host=env["FIRESTORE_EMULATOR_HOST"], storage_url=env["STORAGE_EMULATOR_HOST"])
    server = hosting.serve(spec)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield cloud, user, original, f"http://127.0.0.1:{spec.port}/dicomweb"
    server.shutdown()
    server.server_close()


def bases(world) -> dict[str, str]:
    cloud, _, _, through_hosting = world
    return {"direct": cloud.urls["dicomweb"].rstrip("/"), "hosting": through_hosting}


@pytest.mark.parametrize("way", ["direct", "hosting"])
def test_urls_name_the_origin_the_client_used_and_resolve(world, way):
    cloud, user, original, _ = world
    base = bases(world)[way]
    client = DICOMwebClient(url=base, headers=user.headers())
    ds = original.ds
    assert urlsplit(base).port  # a non-default port, which dicomweb-client's Host leaves out

    [study] = client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
    assert study[RETRIEVE_URL]["Value"] == [f"{base}/studies/{ds.StudyInstanceUID}"]

    item = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                             ds.SOPInstanceUID)
    uri = item["7FE00010"]["BulkDataURI"]
    assert uri == (f"{base}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                   f"/instances/{ds.SOPInstanceUID}/bulkdata/7FE00010")
    assert client.retrieve_bulkdata(uri) == [ds.PixelData]

    sent = fresh("MR_small.dcm", generate_uid())
    before = len(instance_docs(cloud, user.uid))
    answer = client.store_instances([sent])
    [ref] = answer.ReferencedSOPSequence
    assert ref.RetrieveURL == (f"{base}/studies/{sent.StudyInstanceUID}/series/"
                               f"{sent.SeriesInstanceUID}/instances/{sent.SOPInstanceUID}")
    assert answer.RetrieveURL == f"{base}/studies/{sent.StudyInstanceUID}"
    wait_settled(cloud, user.uid, before + 1)  # indexed from its finalize event
    back = client.retrieve_instance(sent.StudyInstanceUID, sent.SeriesInstanceUID,
                                    sent.SOPInstanceUID)
    assert back.SOPInstanceUID == sent.SOPInstanceUID
