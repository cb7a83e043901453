"""Routing an upload by its first bytes (``pacs.zip.safety.sniff``): DICOM, ZIP, or a
polyglot that is both (refused by routing, though well formed as a zip), and a nested
archive detectable by sniffing its member.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pacs.zip.safety import SafeArchive, sniff
from pydicom.data import get_testdata_file

from tests import hostile
from tests.zip_helpers import DEFAULTS, member_kinds


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (bytes(128) + b"DICM" + bytes(8), "dicom"),
        (b"PK\x03\x04" + bytes(200), "zip"),
        (b"PK\x03\x04" + bytes(124) + b"DICM", "polyglot"),
        (b"", "unknown"),
        (b"PK\x05\x06" + bytes(18), "unknown"),  # an empty zip has nothing to route
        (bytes(128) + b"DIC", "unknown"),
    ],
)
def test_sniff(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


def test_sniff_real_dicom_and_polyglot_file(tmp_path: Path) -> None:
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path = hostile.polyglot(tmp_path, dicom=ct)

    head = path.read_bytes()[:132]

    assert sniff(ct[:132]) == "dicom"
    assert sniff(head) == "polyglot"
    assert member_kinds(path) == [("p", "file")]  # as a zip it is well formed: routing must refuse


def test_nested_archive_is_detectable_by_sniffing_the_member(tmp_path: Path) -> None:
    path = hostile.nested_zip(tmp_path)
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [member] = archive.members()

        with archive.open(member) as stream:
            head = stream.read(132)

    assert member.kind == "file"
    assert sniff(head) == "zip"
