"""STOW-RS through the real ``dicomweb-client`` (``store_instances``) and raw multipart bytes,
against the local cloud: new instances are stored through the ingest path (the upload
ledger has a result per part), then found by QIDO and retrieved equal to what was sent;
a duplicate is success; another user's same UIDs are that user's own copy; a study UID
that differs from the URL's is A900; hostile parts are C000 with the request's others
stored; 413 past our cap, 415 for other media types.

Helpers: ``tests/stow_helpers.py``. Limits that need their own settings (quota, the part
size): ``test_dicomweb_stow_limits.py``.
"""

from __future__ import annotations

import io

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pacs.dicomweb import stow
from pydicom.uid import generate_uid

from tests.ingest_helpers import instance_objects, wait_settled, zip_bytes
from tests.localcloud_fixture import LocalCloud, User
from tests.stow_helpers import (
    content_type,
    encoded,
    failed,
    fresh,
    last_ledger,
    multipart,
    post,
    referenced,
)

pytestmark = pytest.mark.localcloud

MIB = 1024 * 1024


def client(cloud: LocalCloud, user: User) -> DICOMwebClient:
    return DICOMwebClient(url=cloud.urls["dicomweb"], headers=user.headers())


def retrieved(cloud: LocalCloud, user: User, ds: pydicom.Dataset) -> pydicom.Dataset:
    return client(cloud, user).retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                                 ds.SOPInstanceUID)


def as_sent(ds: pydicom.Dataset) -> pydicom.Dataset:
    """The dataset as dicomweb-client encodes it (pydicom.dcmwrite), read back."""
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


@pytest.fixture
def user(cloud: LocalCloud) -> User:
    return cloud.create_user(profile=True)


def test_new_instances_are_stored_found_and_retrieved_equal(cloud, user):
    study = generate_uid()
    sent = [fresh("CT_small.dcm", study), fresh("MR_small.dcm", study),
            fresh("JPEG2000.dcm", study), fresh("SC_rgb_rle.dcm", study)]
    answer = client(cloud, user).store_instances(sent)
    refs = answer.ReferencedSOPSequence
    assert "FailedSOPSequence" not in answer
    assert [(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID) for r in refs] == [
        (d.SOPClassUID, d.SOPInstanceUID) for d in sent]
    # dicomweb-client sends ``Host`` without the port; the URLs carry it all the same
    # (test_dicomweb_urls.py).
    base = cloud.urls["dicomweb"].rstrip("/")
    assert [r.RetrieveURL for r in refs] == [
        f"{base}/studies/{study}/series/{d.SeriesInstanceUID}/instances/{d.SOPInstanceUID}"
        for d in sent]
    assert answer.RetrieveURL == f"{base}/studies/{study}"
    # The ingest ledger: one upload record for the request, a result per part.
    record, ledger = last_ledger(cloud, user.uid)
    assert record["status"] == "complete" and record["counts"]["stored"] == len(sent)
    assert [r["status"] for r in ledger] == ["stored"] * len(sent)
    assert all(len(r["sha256"]) == 64 for r in ledger)
    # Indexed by the event-driven indexer like uploads; QIDO finds them; WADO returns them.
    wait_settled(cloud, user.uid, len(sent))
    found = client(cloud, user).search_for_studies(search_filters={"StudyInstanceUID": study})
    assert [f["0020000D"]["Value"][0] for f in found] == [study]
    for ds in sent:
        instances = client(cloud, user).search_for_instances(
            study_instance_uid=study, series_instance_uid=ds.SeriesInstanceUID)
        assert [i["00080018"]["Value"][0] for i in instances] == [ds.SOPInstanceUID]
        back = retrieved(cloud, user, ds)
        assert back == as_sent(ds)
        assert back.PixelData == ds.PixelData


def test_a_duplicate_is_success_and_another_users_same_uids_are_their_own(cloud, user):
    ds = fresh("CT_small.dcm")
    first = client(cloud, user).store_instances([ds])
    again = client(cloud, user).store_instances([ds])
    assert "FailedSOPSequence" not in again
    assert again.ReferencedSOPSequence[0].RetrieveURL == first.ReferencedSOPSequence[0].RetrieveURL
    _, ledger = last_ledger(cloud, user.uid)
    assert [r["status"] for r in ledger] == ["duplicate"]
    bob = cloud.create_user(profile=True)
    theirs = client(cloud, bob).store_instances([ds])
    assert "FailedSOPSequence" not in theirs
    _, ledger = last_ledger(cloud, bob.uid)
    assert [r["status"] for r in ledger] == ["stored"]  # not a duplicate of Alice's copy
    wait_settled(cloud, user.uid, 1)
    wait_settled(cloud, bob.uid, 1)
    mine, bobs = instance_objects(cloud, user.uid), instance_objects(cloud, bob.uid)
    assert len(mine) == len(bobs) == 1 and mine[0].name != bobs[0].name
    assert retrieved(cloud, bob, ds) == as_sent(ds)
    # Bob deleting nothing of Alice's: each sees only their own copy's study.
    for who in (user, bob):
        assert len(client(cloud, who).search_for_studies(
            search_filters={"StudyInstanceUID": ds.StudyInstanceUID})) == 1


def test_study_uid_mismatch_is_a900(cloud, user):
    url_study = generate_uid()
    other = fresh("CT_small.dcm")
    with pytest.raises(requests.HTTPError) as err:
        client(cloud, user).store_instances([other], study_instance_uid=url_study)
    assert err.value.response.status_code == 409
    assert failed(err.value.response.json()) == [(other.SOPInstanceUID, 0xA900)]
    # One matching, one not: 202, the matching one stored.
    match = fresh("MR_small.dcm", url_study)
    resp = post(cloud, user, multipart([encoded(match), encoded(other)]), study=url_study)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert [r[1] for r in referenced(body)] == [match.SOPInstanceUID]
    assert failed(body) == [(other.SOPInstanceUID, 0xA900)]
    assert body["00081190"]["Value"] == [f"{cloud.urls['dicomweb']}/studies/{url_study}"]
    _, ledger = last_ledger(cloud, user.uid)
    assert [(r["status"], r.get("reason")) for r in ledger] == [
        ("stored", None), ("rejected", "study_uid_mismatch")]


def test_hostile_parts_are_c000_and_the_others_stored(cloud, user):
    good = fresh("CT_small.dcm")
    whole = encoded(fresh("CT_small.dcm"))
    truncated = whole[:len(whole) - 5000]  # pixel data shorter than declared
    archive = zip_bytes([("a.dcm", whole)])
    polyglot = archive[:128] + b"DICM" + archive[132:]
    parts = [encoded(good), b"<html>not dicom</html>", truncated, archive, polyglot, b""]
    resp = post(cloud, user, multipart(parts))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert [r[1] for r in referenced(body)] == [good.SOPInstanceUID]
    assert [f[1] for f in failed(body)] == [0xC000] * 5
    _, ledger = last_ledger(cloud, user.uid)
    assert [(r["status"], r.get("reason")) for r in ledger] == [
        ("stored", None), ("rejected", "not_dicom"), ("rejected", "truncated_pixel_data"),
        ("rejected", "nested_archive"), ("rejected", "polyglot"), ("rejected", "empty")]
    # Nothing understood at all: 400, still with the failures listed.
    resp = post(cloud, user, multipart([b"nope", truncated]))
    assert resp.status_code == 400 and [f[1] for f in failed(resp.json())] == [0xC000] * 2


def test_a_body_cut_short_fails_its_last_part_only(cloud, user):
    good, cut = fresh("CT_small.dcm"), fresh("MR_small.dcm")
    body = multipart([encoded(good), encoded(cut)])
    resp = post(cloud, user, body[:len(body) - 3000])
    assert resp.status_code == 202, resp.text
    assert [r[1] for r in referenced(resp.json())] == [good.SOPInstanceUID]
    assert [f[1] for f in failed(resp.json())] == [0xC000]
    record, ledger = last_ledger(cloud, user.uid)
    assert [r.get("reason") for r in ledger][1] in ("truncated_part", "truncated_pixel_data")
    assert record["status"] == "partial"


def test_single_part_application_dicom(cloud, user):
    ds = fresh("MR_small.dcm")
    resp = post(cloud, user, encoded(ds), ctype="application/dicom")
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/dicom+json"
    assert referenced(resp.json())[0][:2] == (ds.SOPClassUID, ds.SOPInstanceUID)
    assert "00081198" not in resp.json()


def test_raw_request_bytes_and_response_shape(cloud, user):
    """dicomweb-client's own framing, sent as bytes with Content-Length (no chunking), and
    a preamble, transport padding and an unquoted boundary accepted alike."""
    a, b = fresh("CT_small.dcm"), fresh("MR_small.dcm")
    body = (b"this preamble is ignored\r\n--xyz \r\nContent-Type: application/dicom\r\n\r\n"
            + encoded(a) + b"\r\n--xyz\r\nContent-Type: application/dicom\r\n\r\n" + encoded(b)
            + b"\r\n--xyz--\r\nand an epilogue")
    resp = post(cloud, user, body, ctype='multipart/related; boundary=xyz; type=application/dicom')
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert set(got) == {"00081190", "00081199"}
    item = got["00081199"]["Value"][0]
    assert item["00081150"] == {"vr": "UI", "Value": [a.SOPClassUID]}
    assert item["00081155"] == {"vr": "UI", "Value": [a.SOPInstanceUID]}
    assert item["00081190"]["vr"] == "UR"
    assert [r[1] for r in referenced(got)] == [a.SOPInstanceUID, b.SOPInstanceUID]


def test_over_our_cap_is_413_declared_or_chunked(cloud, user):
    big = multipart([encoded(fresh()), b"\0" * (stow.MAX_REQUEST_BYTES + MIB)])
    resp = post(cloud, user, big)
    assert resp.status_code == 413 and resp.json()["error"] == "body_too_large"
    assert "smaller batches" in resp.json()["message"] and "upload" in resp.json()["message"]
    chunks = (big[i:i + MIB] for i in range(0, len(big), MIB))
    assert instance_objects(cloud, user.uid) == []  # declared: refused unread
    resp = post(cloud, user, chunks)  # chunked: refused once the cap is read
    assert resp.status_code == 413 and "smaller batches" in resp.json()["message"]
    # What came before the cap was stored and recorded (sent again: a duplicate, success);
    # the request's record is final, holding the bytes read, not left processing.
    record, ledger = last_ledger(cloud, user.uid)
    assert [(r["status"], r.get("reason")) for r in ledger] == [
        ("stored", None), ("rejected", "not_dicom")]  # the zeros: refused by their first bytes
    assert record["status"] == "partial"
    assert stow.MAX_REQUEST_BYTES < record["size"] <= stow.MAX_REQUEST_BYTES + 64 * 1024


def test_too_many_parts_is_413(cloud, user):
    resp = post(cloud, user, multipart([b"x"] * (stow.MAX_PARTS + 1)))
    assert resp.status_code == 413 and resp.json()["error"] == "too_many_parts"


@pytest.mark.parametrize("ctype", [
    "application/dicom+json", 'multipart/related; type="application/dicom+xml"; boundary=b',
    "text/plain", None,
])
def test_other_media_types_are_415(cloud, user, ctype):
    resp = post(cloud, user, multipart([encoded(fresh())], boundary="b"), ctype=ctype or "")
    assert resp.status_code == 415 and resp.json()["error"] == "unsupported_media_type"


def test_refused_without_sign_in_profile_or_write_access(cloud):
    body = multipart([encoded(fresh())])
    assert post(cloud, None, body).status_code == 401
    no_profile = cloud.create_user()
    resp = post(cloud, no_profile, body)
    assert resp.status_code == 403 and resp.json()["error"] == "profile_required"
    assert instance_objects(cloud, no_profile.uid) == []


def test_same_uid_other_content_is_0111_and_the_first_copy_kept(cloud, user):
    ds = fresh("CT_small.dcm")
    client(cloud, user).store_instances([ds])
    changed = pydicom.dcmread(io.BytesIO(encoded(ds)))
    changed.PatientName = "Other^Content"
    resp = post(cloud, user, multipart([encoded(changed)]))
    assert resp.status_code == 409, resp.text
    assert failed(resp.json()) == [(ds.SOPInstanceUID, 0x0111)]
    _, ledger = last_ledger(cloud, user.uid)
    assert [(r["status"], r.get("reason")) for r in ledger] == [("conflict", "conflict")]
    wait_settled(cloud, user.uid, 1)
    assert retrieved(cloud, user, ds).PatientName == ds.PatientName


def test_nothing_is_stored_once_the_erasure_marker_exists(cloud, user):
    from datetime import UTC, datetime

    from pacs import markers

    fs, key = cloud.clients().firestore, cloud.settings().hash_key
    markers.erasure_marker_ref(fs, key, user.uid).set({"started_at": datetime.now(UTC)})
    resp = post(cloud, user, multipart([encoded(fresh())]))
    assert resp.status_code == 403 and resp.json()["error"] == "erasure_in_progress"
    assert instance_objects(cloud, user.uid) == []


def test_api_keys_store_with_read_write_scope_only(cloud, user):
    from tests.keys_helpers import bearer, new_key

    ds = fresh("MR_small.dcm")
    read_only = bearer(new_key(cloud, user, "read")["key"])
    resp = post(cloud, None, multipart([encoded(ds)]), headers=read_only)
    assert resp.status_code == 403 and resp.json()["error"] == "insufficient_scope"
    assert instance_objects(cloud, user.uid) == []
    writer = DICOMwebClient(url=cloud.urls["dicomweb"],
                            headers=bearer(new_key(cloud, user, "read-write")["key"]))
    answer = writer.store_instances([ds])
    assert [r.ReferencedSOPInstanceUID for r in answer.ReferencedSOPSequence] == [
        ds.SOPInstanceUID]


def test_logs_carry_ids_only(cloud, user):
    name, pid = "Stowlogcheck^Zebulon", "STOW-PID-31337"
    good = fresh("CT_small.dcm", PatientName=name, PatientID=pid)
    mismatch = fresh("MR_small.dcm", PatientName=name, PatientID=pid)
    resp = post(cloud, user, multipart([encoded(good), encoded(mismatch), b"junk " + pid.encode()]),
                study=good.StudyInstanceUID)
    assert resp.status_code == 202, resp.text
    wait_settled(cloud, user.uid, 1)
    text = cloud.all_log_text()
    for secret in (name, "Stowlogcheck", pid, good.StudyInstanceUID, good.SOPInstanceUID,
                   mismatch.SOPInstanceUID):
        assert secret not in text


def test_parts_past_the_time_budget_are_named_but_not_stored(cloud, user, monkeypatch):
    """The domain call against the emulators (as the entry point makes it), with the
    budget already spent: every part is read and named, none stored, each A700 with its
    ledger reason, and the request's record is final."""
    sent = [fresh("CT_small.dcm"), fresh("MR_small.dcm")]
    monkeypatch.setattr(stow, "TIME_BUDGET_SECONDS", -1.0)
    body = multipart([encoded(d) for d in sent])
    answer = stow.store(cloud.clients(), user.uid, stow.StowRequest(
        content_type(), len(body), io.BytesIO(body), None, "https://site.test/dicomweb"))
    assert answer.status == 409
    assert failed(answer.body) == [(d.SOPInstanceUID, 0xA700) for d in sent]
    record, ledger = last_ledger(cloud, user.uid)
    assert [(r["status"], r.get("reason")) for r in ledger] == [("rejected", "time_budget")] * 2
    assert record["status"] == "failed" and record["counts_toward_quota"] is False
    assert instance_objects(cloud, user.uid) == []


def test_an_accept_without_dicom_json_is_406(cloud, user):
    body = multipart([encoded(fresh())])
    resp = post(cloud, user, body, headers={"Accept": "application/dicom+xml"})
    assert resp.status_code == 406 and resp.json()["error"] == "not_acceptable"
    assert instance_objects(cloud, user.uid) == []
    resp = post(cloud, user, body, headers={"Accept": "application/dicom+xml, */*;q=0.1"})
    assert resp.status_code == 200, resp.text


def test_an_erasure_that_begins_mid_request_stops_it(cloud, user):
    """The domain call against the emulators: the owner's erasure marker appears while the
    second part is being read; that part is not stored and the request answers 403."""
    from datetime import UTC, datetime

    from pacs import markers
    from pacs.errors import Forbidden

    first, second = fresh("CT_small.dcm"), fresh("MR_small.dcm")
    body = multipart([encoded(first), encoded(second)])
    trigger = body.index(encoded(second)) + 8192  # inside the second part
    fs, key = cloud.clients().firestore, cloud.settings().hash_key

    class MarkerMidway(io.RawIOBase):
        def __init__(self):
            self.data, self.pos, self.marked = body, 0, False

        def read(self, n=-1):
            out = self.data[self.pos:self.pos + min(4096, n if n > 0 else 4096)]
            self.pos += len(out)
            if self.pos > trigger and not self.marked:
                markers.erasure_marker_ref(fs, key, user.uid).set({"at": datetime.now(UTC)})
                self.marked = True
            return out

    with pytest.raises(Forbidden) as err:
        stow.store(cloud.clients(), user.uid, stow.StowRequest(
            content_type(), len(body), MarkerMidway(), None, "https://site.test/dicomweb"))
    assert err.value.code == "erasure_in_progress"
    stored = [b.name for b in instance_objects(cloud, user.uid)]
    from pacs import ids

    # Nothing of the second part. The first part's object is the erasure's to delete, unless
    # the indexer already did: its finalize event may arrive after the marker (under load),
    # and the indexer removes what it finds of an owner whose erasure began.
    first_key = ids.instance_key(key, user.uid, first.SOPInstanceUID)
    assert len(stored) <= 1 and all(first_key in name for name in stored), stored


def test_a_study_being_deleted_takes_nothing_0110(cloud, user):
    from pacs import ids, markers

    ds = fresh("CT_small.dcm")
    fs, key = cloud.clients().firestore, cloud.settings().hash_key
    study_key = ids.study_key(key, user.uid, ds.StudyInstanceUID)
    markers.deletion_ref(fs, key, user.uid, study_key).set(
        {"owner": user.uid, "status": markers.DELETION_IN_PROGRESS})
    resp = post(cloud, user, multipart([encoded(ds)]))
    assert resp.status_code == 409, resp.text
    assert failed(resp.json()) == [(ds.SOPInstanceUID, 0x0110)]
    _, ledger = last_ledger(cloud, user.uid)
    assert [(r["status"], r.get("reason")) for r in ledger] == [("rejected", "study_deleted")]
    assert instance_objects(cloud, user.uid) == []
