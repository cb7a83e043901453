"""De-identified shares (issue 16, data minimisation): ``POST /shares {deidentified: true}``
makes a PS3.15 Annex E copy in the derived bucket; the recipient's manifest and series pages
sign only the copy's objects, and no original identifier is in any byte the recipient can
fetch. The copy goes with the share's revocation, its expiry (``expire_links``) and the
study's deletion."""

from __future__ import annotations

import io
from datetime import timedelta

import pydicom
import pytest
from pacs.dicom.deidentify import annex_e_tags
from pacs.links import deidentified

from tests.retention_helpers import run_scheduled
from tests.sign_link_helpers import call, create_share, exchange, fetch, ok, seed_study

pytestmark = pytest.mark.localcloud
TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC", "UI", "DA", "DT", "AE"}


def _identifiers(seeded) -> set[str]:
    """Names, IDs, UIDs, dates and free text (6+ characters) of the originals' Annex E
    attributes, and every UID of the originals but class UIDs and transfer syntaxes."""
    table = annex_e_tags()
    found: set[str] = set()

    def visit(_ds, element) -> None:
        key = (element.tag.group, element.tag.element)
        if element.VR not in TEXT_VRS or element.value in (None, ""):
            return
        values = element.value if isinstance(element.value, list | pydicom.multival.MultiValue) \
            else [element.value]
        is_instance_uid = element.VR == "UI" and not element.keyword.endswith("ClassUID") \
            and element.keyword != "TransferSyntaxUID"
        if key in table or is_instance_uid:
            found.update(str(v).strip() for v in values if len(str(v).strip()) >= 6)

    for data in seeded.objects.values():
        if data[128:132] == b"DICM":
            pydicom.dcmread(io.BytesIO(data)).walk(visit)
    assert {"CompressedSamples^CT1", "20040119"} <= found
    return found


def _recipient_bytes(cloud, share) -> tuple[dict, list[bytes]]:
    manifest = ok(exchange(cloud, share["token"]))
    blobs = []
    for series in manifest["series"]:
        page = ok(call(cloud, "share/series", {"token": share["token"], "view": manifest["view"],
                                               "series_id": series["series_id"]}))
        assert page["next_page_token"] is None
        for instance in page["instances"]:
            resp = fetch(instance["url"])
            assert resp.status_code == 200, resp.text
            blobs.append(resp.content)
    return manifest, blobs


def _copy_objects(cloud, uid, share_id) -> list[str]:
    return [b.name for b in cloud.clients().storage.list_blobs(
        cloud.buckets["derived"], prefix=deidentified.prefix(uid, share_id))]


def test_recipient_gets_only_the_deidentified_copy_and_revocation_deletes_it(cloud, owner):
    seeded = seed_study(cloud, owner.uid, instances_per_series=(2, 1), previews=True)
    share = create_share(cloud, owner, seeded.study_key, deidentified=True)
    assert share["deidentified"] is True and share["copied"] == 3 and share["left_out"] == {}
    names = _copy_objects(cloud, owner.uid, share["share_id"])
    # 3 instances, and the one copy series' DICOMweb metadata, frame index and preview.
    assert len([n for n in names if n.endswith(".dcm")]) == 3 and len(names) == 6

    manifest, blobs = _recipient_bytes(cloud, share)
    text = str(manifest)
    identifiers = _identifiers(seeded)
    assert manifest["deidentified"] is True and manifest["study"]["PatientIdentityRemoved"] == "YES"
    # The seeded objects are all CT_small (one SeriesInstanceUID): the copy groups by the
    # files' own (remapped) series, so one series of three.
    assert len(blobs) == 3 and len(manifest["series"]) == 1
    # Its thumbnail, as for a full share: rendered from the copy, signed, beside the copy.
    thumbnail = manifest["series"][0]["preview"]
    assert thumbnail["status"] == "ready"
    picture = fetch(thumbnail["url"])
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert [n for n in names if "/preview-" in n] != []
    for secret in identifiers | {seeded.study_key, *seeded.series}:
        assert secret not in text, secret
    for data in blobs:
        assert data not in seeded.objects.values()
        for secret in identifiers:
            assert secret.encode() not in data, secret
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.PatientID != "1CT1" and ds.PatientName == ""
        assert ds.PatientIdentityRemoved == "YES" and ds.StudyInstanceUID == \
            manifest["study"]["StudyInstanceUID"]
    # Nor in any byte of what DICOMweb serves of the copy (test_share_deidentified_dicomweb).
    import gzip

    derived = cloud.clients().storage.bucket(cloud.buckets["derived"])
    for name in names:
        stored = derived.blob(name).download_as_bytes()
        stored = gzip.decompress(stored) if name.endswith(".gz") else stored
        for secret in identifiers:
            assert secret.encode() not in stored, (name, secret)
    # One study in the copy: UIDs consistent across its instances.
    assert len({pydicom.dcmread(io.BytesIO(d)).StudyInstanceUID for d in blobs}) == 1
    # The owner's list says what the share is.
    listed = ok(call(cloud, "shares", method="GET", user=owner))["shares"]
    assert [s["deidentified"] for s in listed if s["share_id"] == share["share_id"]] == [True]

    # DICOMweb serves the copy (of an ingested study): test_share_deidentified_dicomweb.py.
    ok(call(cloud, f"shares/{share['share_id']}", method="DELETE", user=owner))
    assert _copy_objects(cloud, owner.uid, share["share_id"]) == []
    fs = cloud.clients().firestore
    copies = fs.collection("shares").document(share["share_id"]).collection(
        deidentified.COPIES)
    assert list(copies.stream()) == []
    assert exchange(cloud, share["token"]).status_code == 404


def test_expiry_and_study_deletion_delete_the_copy(cloud_env, owner):
    cloud = cloud_env  # the emulator settings in os.environ (run_scheduled publishes)
    seeded = seed_study(cloud, owner.uid, instances_per_series=(1,), previews=False)
    expiring = create_share(cloud, owner, seeded.study_key, deidentified=True)
    kept = create_share(cloud, owner, seeded.study_key, deidentified=True)
    assert _copy_objects(cloud, owner.uid, expiring["share_id"])
    fs = cloud.clients().firestore
    ref = fs.collection("shares").document(expiring["share_id"])
    ref.update({"expires_at": ref.get().to_dict()["created_at"] - timedelta(seconds=1)})

    run_scheduled(cloud, "expire_links")
    assert not ref.get().exists
    assert _copy_objects(cloud, owner.uid, expiring["share_id"]) == []
    assert _copy_objects(cloud, owner.uid, kept["share_id"])

    resp = requests_delete_study(cloud, owner, seeded.study_key)
    assert resp.status_code == 200, resp.text
    assert _copy_objects(cloud, owner.uid, kept["share_id"]) == []


def requests_delete_study(cloud, owner, study_key):
    import requests

    return requests.delete(f"{cloud.urls['studies']}/{study_key}",
                           headers=owner.headers(), timeout=120)


def test_no_copy_stays_once_the_owner_erasure_began(cloud):
    from pacs import markers
    from pacs.errors import Forbidden

    user = cloud.create_user()
    seeded = seed_study(cloud, user.uid, instances_per_series=(2,), previews=False)
    marker = markers.erasure_marker_ref(cloud.clients().firestore, cloud.settings().hash_key,
                                        user.uid)
    marker.set({"status": "in_progress"})
    try:
        with pytest.raises(Forbidden) as err:
            deidentified.make_copy(cloud.clients(), user.uid, seeded.study_key, "e" * 20)
        assert err.value.code == "erasure_in_progress"
        assert _copy_objects(cloud, user.uid, "e" * 20) == []
    finally:
        marker.delete()


def test_the_copy_counts_toward_the_quota_until_revoked(cloud, owner):
    import dataclasses
    from datetime import UTC, datetime

    from pacs.errors import QuotaExceeded
    from pacs.ingest import uploads

    seeded = seed_study(cloud, owner.uid, instances_per_series=(2,), previews=False)
    fs = cloud.clients().firestore
    since = datetime.now(UTC)
    assert uploads.usage(fs, owner.uid, since).held_bytes == 0  # seeded: no upload records
    share = create_share(cloud, owner, seeded.study_key, deidentified=True)
    stored = sum(b.size for b in cloud.clients().storage.list_blobs(
        cloud.buckets["derived"], prefix=deidentified.prefix(owner.uid, share["share_id"])))
    assert stored > 0 and uploads.usage(fs, owner.uid, since).held_bytes == stored
    ok(call(cloud, f"shares/{share['share_id']}", method="DELETE", user=owner))
    assert uploads.usage(fs, owner.uid, since).held_bytes == 0
    # A copy that would not fit is refused before anything is written.
    small = dataclasses.replace(cloud.clients(), settings=dataclasses.replace(
        cloud.settings(), user_quota_bytes=stored // 2))
    with pytest.raises(QuotaExceeded) as err:
        deidentified.make_copy(small, owner.uid, seeded.study_key, "q" * 20)
    assert err.value.code == "quota_exceeded"
    assert _copy_objects(cloud, owner.uid, "q" * 20) == []
