"""Restriction of processing on DICOMweb (docs/privacy.md, *Restriction and objection*):
while the account or a study is restricted, the study is still listed (storage goes on) but
nothing opens it: metadata, frames, bulk data, rendered images and thumbnails answer 403
``restricted`` for the owner's ID token and for an API key alike, and STOW-RS refuses
each part bound for it with FailureReason 0124 (not authorized), storing nothing. Lifting
the restriction opens the study again. Real functions, the pinned ``dicomweb-client``,
pydicom's test files as the oracle.

World: ``tests/keys_helpers.py`` (Alice owns CT_small and MR_small).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from pacs.dicomweb import stow

from tests.ingest_helpers import instance_objects
from tests.keys_helpers import KeysWorld, bearer, new_key
from tests.privacy_helpers import call, ok
from tests.stow_helpers import encoded, failed, fresh, last_ledger, multipart, post, referenced

pytestmark = pytest.mark.localcloud

STUDY_UID = "0020000D"


@pytest.fixture(scope="module")
def world(cloud) -> KeysWorld:
    return KeysWorld(cloud)


@pytest.fixture(scope="module")
def key(world: KeysWorld) -> str:
    return new_key(world.cloud, world.alice, scope="read-write")["key"]


@contextmanager
def restricted(world: KeysWorld, study_key: str | None = None) -> Iterator[None]:
    """Alice's account (or one study of hers) restricted through the privacy API."""
    body = {"study_id": study_key} if study_key else {}
    ok(call(world.cloud, "restrict", world.alice, body={"restricted": True, **body}))
    try:
        yield
    finally:
        ok(call(world.cloud, "restrict", world.alice, body={"restricted": False, **body}))


def opening_paths(original) -> list[str]:
    """Every resource that reads a study beyond its listing."""
    ds = original.ds
    study = f"studies/{ds.StudyInstanceUID}"
    series = f"{study}/series/{ds.SeriesInstanceUID}"
    instance = f"{series}/instances/{ds.SOPInstanceUID}"
    return [f"{study}/metadata", f"{series}/metadata", f"{instance}/metadata",
            f"{instance}/frames/1", f"{instance}/bulkdata/7FE00010", f"{instance}/rendered",
            f"{instance}/thumbnail", f"{series}/thumbnail", f"{study}/thumbnail",
            f"{series}/rendered", f"{study}/rendered", f"{instance}/frames/1/rendered",
            instance, series, study]


def listed(world: KeysWorld, headers: dict[str, str]) -> set[str]:
    return {s[STUDY_UID]["Value"][0] for s in world.client(headers).search_for_studies()}


def test_a_restricted_study_is_listed_but_opens_for_no_credential(world, key):
    ct, mr = world.ct, world.mr
    credentials = {"id token": world.alice.headers(), "api key": bearer(key)}
    with restricted(world, world.study_key(world.alice, ct)):
        for name, headers in credentials.items():
            assert listed(world, headers) >= {ct.ds.StudyInstanceUID, mr.ds.StudyInstanceUID}
            series = world.client(headers).search_for_series(ct.ds.StudyInstanceUID)
            assert [s["0020000E"]["Value"][0] for s in series] == [ct.ds.SeriesInstanceUID]
            for path in opening_paths(ct):
                resp = world.get(path, headers)
                assert resp.status_code == 403, (name, path, resp.status_code, resp.text[:200])
                assert resp.json()["error"] == "restricted", (name, path)
            # The account's other study opens as before.
            frames = world.client(headers).retrieve_instance_frames(
                mr.ds.StudyInstanceUID, mr.ds.SeriesInstanceUID, mr.ds.SOPInstanceUID, [1])
            assert frames == [mr.ds.PixelData]
        with pytest.raises(requests.HTTPError) as refused:
            world.client(world.alice.headers()).retrieve_study_metadata(ct.ds.StudyInstanceUID)
        assert refused.value.response.status_code == 403
    # Lifted: the same credentials open it again.
    for headers in credentials.values():
        frames = world.client(headers).retrieve_instance_frames(
            ct.ds.StudyInstanceUID, ct.ds.SeriesInstanceUID, ct.ds.SOPInstanceUID, [1])
        assert frames == [ct.ds.PixelData]


def test_another_users_study_stays_404_while_restricted(world):
    """The restriction answer never tells a stranger that a study exists."""
    with restricted(world, world.study_key(world.alice, world.mr)):
        for path in opening_paths(world.mr)[:4]:
            assert world.get(path, world.bob.headers()).status_code == 404, path


def test_stow_into_a_restricted_study_is_refused_per_instance(world, key):
    ct = world.ct.ds
    into_ct = fresh("CT_small.dcm", study=ct.StudyInstanceUID)
    elsewhere = fresh("CT_small.dcm")
    before = len(instance_objects(world.cloud, world.alice.uid))
    with restricted(world, world.study_key(world.alice, world.ct)):
        for headers in (None, bearer(key)):
            resp = post(world.cloud, world.alice if headers is None else None,
                        multipart([encoded(into_ct), encoded(elsewhere)]), headers=headers)
            assert resp.status_code == 202, resp.text
            assert failed(resp.json()) == [(into_ct.SOPInstanceUID, stow.NOT_AUTHORIZED)]
            assert [r[1] for r in referenced(resp.json())] == [elsewhere.SOPInstanceUID]
            _, results = last_ledger(world.cloud, world.alice.uid)
            assert [(r["status"], r.get("reason")) for r in results][0] == (
                "rejected", "restricted")
            alone = post(world.cloud, world.alice, encoded(into_ct), ctype="application/dicom",
                         study=ct.StudyInstanceUID)
            assert alone.status_code == 409, alone.text
            assert failed(alone.json()) == [(into_ct.SOPInstanceUID, stow.NOT_AUTHORIZED)]
    # Only the other study's instance was stored (once: the second request's is a duplicate).
    assert len(instance_objects(world.cloud, world.alice.uid)) == before + 1
    # Lifted: the instance is taken.
    resp = post(world.cloud, world.alice, encoded(into_ct), ctype="application/dicom")
    assert resp.status_code == 200, resp.text


def test_a_restricted_account_opens_nothing_and_stores_nothing(world, key):
    ct = world.ct
    with restricted(world):
        assert listed(world, world.alice.headers()) >= {ct.ds.StudyInstanceUID,
                                                         world.mr.ds.StudyInstanceUID}
        for path in opening_paths(ct)[:6]:
            resp = world.get(path, world.alice.headers())
            assert resp.status_code == 403 and resp.json()["error"] == "restricted", path
        new = fresh("MR_small.dcm")
        resp = post(world.cloud, world.alice, encoded(new), ctype="application/dicom")
        assert resp.status_code == 409, resp.text
        assert failed(resp.json()) == [(new.SOPInstanceUID, stow.NOT_AUTHORIZED)]
        # An API key is suspended outright (docs/api_keys.md).
        assert world.get(opening_paths(ct)[0], bearer(key)).json()["error"] == "key_suspended"
    # Lifted (frames: they do not wait for the series' metadata rebuild after the STOW above).
    assert world.get(opening_paths(ct)[3], world.alice.headers()).status_code == 200


def test_opening_a_frame_reads_the_flags_in_the_study_read(world, monkeypatch):
    """The check costs no round trip: a frames request makes the same four batched reads as
    before it (study with the account's flag, series, instance, series' metadata pointer),
    and a whole-study retrieve one fewer (the flags were a second read of the study)."""
    from pacs.dicomweb import frames, wado

    clients = world.cloud.clients()
    api = clients.firestore._firestore_api
    calls: list[int] = []
    real = api.batch_get_documents

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "batch_get_documents", counted)
    ds = world.ct.ds
    _, body = frames.retrieve_frames(clients, world.alice.uid, ds.StudyInstanceUID,
                                     ds.SeriesInstanceUID, ds.SOPInstanceUID, "1", None)
    assert b"".join(body) and len(calls) == 4, calls
    calls.clear()
    wado.list_instances(clients, world.alice.uid, ds.StudyInstanceUID)
    assert len(calls) == 1, calls  # the study and the account; the listing is a query
