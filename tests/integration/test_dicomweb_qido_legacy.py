"""Legacy date and time forms are matched as dates and times, in QIDO-RS and in our own
search (``/api/studies``): pydicom-data's ``color-pl.dcm`` (an echo, StudyDate
``1994.11.05``, StudyTime ``11:20:00``) and pydicom's ``ExplVR_BigEnd.dcm`` (``1997.04.24``,
``14:04:38``), ingested through the upload path. Before this change every date range missed
them. Studies indexed before it are brought to the current keys by the
``refresh_search_keys`` retention job, run here on one such study.
"""

from __future__ import annotations

import pytest
import requests
from pacs import ids
from pacs.retention import runner
from pydicom.data import get_testdata_file

from tests.dicom_corpus import pydicom_data_dir
from tests.dicomweb_helpers import ingest, read_original, value
from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud

STUDY_UID = "0020000D"


class Legacy:
    def __init__(self, cloud: LocalCloud):
        self.cloud = cloud
        data_dir = pydicom_data_dir()
        assert data_dir is not None, "pydicom-data is a pinned test dependency"
        self.echo = read_original(data_dir / "color-pl.dcm")
        self.big_endian = read_original(get_testdata_file("ExplVR_BigEnd.dcm"))
        assert self.echo.ds.StudyDate == "1994.11.05" and self.echo.ds.StudyTime == "11:20:00"
        assert self.big_endian.ds.StudyDate == "1997.04.24"
        self.user = cloud.create_user()
        ingest(cloud, self.user, [self.echo, self.big_endian])

    def qido(self, **params: str) -> list[str]:
        resp = requests.get(self.cloud.urls["dicomweb"] + "/studies", params=params,
                            headers=self.user.headers(), timeout=30)
        assert resp.status_code == 200, resp.text
        return [value(i, STUDY_UID) for i in resp.json()]

    def search(self, **params: str) -> list[str]:
        resp = requests.post(self.cloud.urls["studies"] + "/search", json=params,
                             headers=self.user.headers(), timeout=30)
        assert resp.status_code == 200, resp.text
        key = self.cloud.settings().hash_key
        by_key = {ids.study_key(key, self.user.uid, o.ds.StudyInstanceUID): o.ds.StudyInstanceUID
                  for o in (self.echo, self.big_endian)}
        return [by_key[s["id"]] for s in resp.json()["studies"]]

    def study_docs(self) -> list:
        from google.cloud.firestore_v1.base_query import FieldFilter

        return list(self.cloud.clients().firestore.collection("studies").where(
            filter=FieldFilter("owner", "==", self.user.uid)).stream())


@pytest.fixture(scope="module")
def legacy(cloud: LocalCloud) -> Legacy:
    return Legacy(cloud)


def test_qido_date_and_time_ranges_find_legacy_forms(legacy):
    echo, old = legacy.echo.ds.StudyInstanceUID, legacy.big_endian.ds.StudyInstanceUID
    assert legacy.qido(StudyDate="19941105") == [echo]
    assert legacy.qido(StudyDate="1994.11.05") == [echo]  # the legacy form asked for, too
    assert legacy.qido(StudyDate="19940101-19991231") == [old, echo]  # newest first
    assert legacy.qido(StudyDate="-19951231") == [echo]
    assert legacy.qido(StudyDate="19970424-") == [old]
    assert legacy.qido(StudyTime="1120") == [echo]
    assert legacy.qido(StudyTime="1400-1500") == [old]
    assert legacy.qido(StudyDate="19941105", StudyTime="12-") == []


def test_answers_hold_dates_normalised_and_documents_keep_the_original(legacy):
    resp = requests.get(legacy.cloud.urls["dicomweb"] + "/studies", timeout=30,
                        params={"StudyInstanceUID": legacy.echo.ds.StudyInstanceUID},
                        headers=legacy.user.headers())
    [item] = resp.json()
    assert value(item, "00080020") == legacy.echo.ds.StudyDate.replace(".", "")
    assert value(item, "00080030") == legacy.echo.ds.StudyTime.replace(":", "")
    docs = [s.to_dict() for s in legacy.study_docs()]
    assert {d["StudyDate"] for d in docs} == {"1994.11.05", "1997.04.24"}


def test_our_own_search_finds_them_by_date(legacy):
    echo, old = legacy.echo.ds.StudyInstanceUID, legacy.big_endian.ds.StudyInstanceUID
    assert legacy.search() == [old, echo]
    assert legacy.search(date="1994-11-05") == [echo]
    assert legacy.search(date_from="19940101", date_to="19951231") == [echo]
    assert legacy.search(date_from="19970101") == [old]


def test_the_backfill_job_brings_old_keys_to_the_current_layout(legacy):
    """A study indexed before this change (its keys as the old code wrote them: no date,
    sorted last) is missed by a date range until ``refresh_search_keys`` runs; the job
    then writes it once, and a second pass reads only its state."""
    echo = legacy.echo.ds.StudyInstanceUID
    [snap] = [s for s in legacy.study_docs() if s.to_dict()["StudyInstanceUID"] == echo]
    current = snap.to_dict()["search"]
    old = {k: v for k, v in current.items() if k != "time"}
    old.update(date="", sort="00000000")
    snap.reference.update({"search": old})
    assert legacy.qido(StudyDate="19941105") == []
    assert legacy.search(date="19941105") == []
    record = runner.run(legacy.cloud.clients(), "refresh_search_keys",
                        scope=f"{legacy.user.uid}/")
    assert record["counts"].get("studies_refreshed") == 1, record
    assert snap.reference.get().to_dict()["search"] == current
    assert legacy.qido(StudyDate="19941105") == [echo]
    assert legacy.search(date="19941105") == [echo]
    again = runner.run(legacy.cloud.clients(), "refresh_search_keys",
                       scope=f"{legacy.user.uid}/")
    assert not again["counts"].get("studies_read"), again
