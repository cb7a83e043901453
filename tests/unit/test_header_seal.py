"""The header sealed into instance metadata: opens only for its object and key, carries no
readable PHI, and falls back (None) whenever it cannot be trusted."""

from __future__ import annotations

import base64
import json

import pydicom
import pytest
from pacs.dicom import header as dicom_header
from pacs.dicom import seal
from pacs.indexing import catalog
from pydicom.data import get_testdata_file

KEY = b"unit-test-hash-key"
NAME = "uid1/study1/instance1.dcm"


@pytest.fixture
def ct_fields() -> dict:
    path = get_testdata_file("CT_small.dcm")
    data = open(path, "rb").read()
    header = dicom_header.read_header(data, len(data), max_header_bytes=2**20,
                                      inflate_max_bytes=2**24)
    return catalog.sealed_fields(header.fields, header.is_image)


def test_seal_round_trips_the_instance_fields(ct_fields):
    token = seal.seal(KEY, NAME, ct_fields)

    opened = seal.open_seal(KEY, NAME, token)

    assert opened == json.loads(json.dumps(ct_fields))
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert opened["fields"]["SOPInstanceUID"] == ds.SOPInstanceUID
    assert opened["fields"]["SeriesInstanceUID"] == ds.SeriesInstanceUID
    assert opened["is_image"] is True


def test_sealed_metadata_holds_no_readable_identifier(ct_fields):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))

    token = seal.seal(KEY, NAME, ct_fields)

    raw = base64.urlsafe_b64decode(token.split(".", 1)[1])
    for value in (ds.SOPInstanceUID, ds.SeriesInstanceUID, str(ds.PatientName)):
        assert value not in token and value.encode() not in raw


@pytest.mark.parametrize("change", ["other_object", "other_key", "tampered", "truncated",
                                    "absent", "garbage", "oversized"])
def test_seal_that_cannot_be_trusted_does_not_open(ct_fields, change):
    token = seal.seal(KEY, NAME, ct_fields)
    key, name = KEY, NAME
    if change == "other_object":
        name = "uid1/study1/instance2.dcm"
    elif change == "other_key":
        key = b"another-deployment"
    elif change == "tampered":
        raw = bytearray(base64.urlsafe_b64decode(token.split(".", 1)[1]))
        raw[20] ^= 1
        token = "v1." + base64.urlsafe_b64encode(bytes(raw)).decode()
    elif change == "truncated":
        token = token[:40]
    elif change == "absent":
        token = None
    elif change == "garbage":
        token = "v1.!!!not-base64!!!"
    elif change == "oversized":
        token = "v1." + "A" * seal.MAX_SEAL_CHARS

    assert seal.open_seal(key, name, token) is None


def test_fields_too_large_for_metadata_are_not_sealed():
    huge = {"fields": {"SliceLocation": "x" * 10_000}, "is_image": True}

    assert seal.seal(KEY, NAME, huge) is None
