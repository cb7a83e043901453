"""The series metadata entry ingest keeps per stored instance (pacs.indexing.metadata_parts):
the instance's DICOM JSON as pydicom writes it, and none when it is too large to hold until
the batch commits (bounded memory), or when pydicom cannot encode it."""

from __future__ import annotations

import io
import json

import pydicom
from pacs.dicom import header as dicom_header
from pacs.indexing import metadata_parts
from pydicom.data import get_testdata_file

LIMITS = {"max_header_bytes": 64 * 1024**2, "inflate_max_bytes": 1024**3}


def parsed(data: bytes):
    fileobj = io.BytesIO(data)
    header, ds = dicom_header.read_header_dataset(fileobj, len(data), **LIMITS)
    return header, ds, fileobj


def with_long_text(chars: int) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(0x00091000, "LO", "PACS TEST")  # a private block
    ds.add_new(0x00091010, "UT", "x" * chars)  # text, not bulk data, however long
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_an_entry_is_the_instance_json_with_the_frame_table():
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    header, ds, fileobj = parsed(data)
    entry = metadata_parts.safe_entry(header, ds, fileobj, len(data))
    assert entry is not None and entry["sop"] == header.sop_instance_uid
    found = json.loads(entry["d"])
    plain = {k: v for k, v in found.items() if "BulkDataURI" not in v}
    expected = pydicom.dcmread(get_testdata_file("CT_small.dcm")).to_json_dict()
    assert plain == {k: v for k, v in expected.items() if k in plain}
    # A private binary value over 1 KiB and the pixel data are BulkDataURIs; the trailing
    # padding after the pixel data is not in the metadata (docs/dicomweb.md)
    assert set(found) - set(plain) == {"00431029", "7FE00010"}
    assert set(expected) - set(found) == {"FFFCFFFC"}
    assert len(entry["f"]["frames"]) == 1 and "fe" not in entry


def test_an_entry_too_large_to_hold_is_left_to_settle():
    small, large = with_long_text(1000), with_long_text(metadata_parts.MAX_ENTRY_CHARS)
    for data, kept in ((small, True), (large, False)):
        header, ds, fileobj = parsed(data)
        fileobj.seek(7)
        entry = metadata_parts.safe_entry(header, ds, fileobj, len(data))
        assert (entry is not None) is kept
        assert fileobj.tell() == 7  # the spooled file is left where it was
