"""Members of uploaded ZIP archives (``pacs.zip.members``): names are only text (zip slip,
odd and unsafe characters sanitised, UTF-8 flagged names decoded), each member has its
kind (file, directory, symlink, encrypted, unsupported compression, DICOMDIR), and only
files of this archive can be opened.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pacs.zip.safety import MemberInfo, MemberRejected, SafeArchive

from tests import hostile
from tests.zip_helpers import DEFAULTS, inspect_file, member_kinds


def test_zip_slip_names_are_only_text(tmp_path: Path) -> None:
    kinds = member_kinds(hostile.zip_slip(tmp_path))

    assert kinds == [(name, "file") for name in hostile.ZIP_SLIP_NAMES]


def test_symlink_member(tmp_path: Path) -> None:
    kinds = member_kinds(hostile.symlink(tmp_path))

    assert kinds == [("link.dcm", "symlink"), ("plain.dcm", "file")]


def test_traditional_encryption(tmp_path: Path) -> None:
    assert member_kinds(hostile.traditional_encrypted(tmp_path)) == [("secret.dcm", "encrypted")]


def test_aes_encryption_with_and_without_flag(tmp_path: Path) -> None:
    kinds = member_kinds(hostile.aes_encrypted(tmp_path))

    assert kinds == [("aes.dcm", "encrypted"), ("aes_noflag.dcm", "encrypted")]


def test_unsupported_compression(tmp_path: Path) -> None:
    assert member_kinds(hostile.unsupported_compression(tmp_path)) == [
        ("b.dcm", "unsupported_compression")]


def test_dicomdir_members(tmp_path: Path) -> None:
    kinds = member_kinds(hostile.dicomdir(tmp_path))

    assert kinds == [("DICOMDIR", "dicomdir"), ("sub/DicomDir", "dicomdir"),
                     ("sub\\dicomdir", "dicomdir"), ("DICOMDIR.dcm", "file")]


def test_directory_members(tmp_path: Path) -> None:
    kinds = member_kinds(hostile.directories(tmp_path))

    assert kinds == [("series1/", "directory"), ("windir", "directory"),
                     ("series1/a.dcm", "file")]


def test_odd_names_are_sanitised(tmp_path: Path) -> None:
    names = [m.display_name for m in inspect_file(hostile.odd_names(tmp_path))]

    assert names == [
        "nul\ufffdname.dcm",
        "caf\u0398.dcm",  # cp437 0xE9 is Greek capital theta
        "bad\ufffd\ufffd.dcm",
        "esc\ufffd[31m.dcm",
        "\ufffdgnp.dcm",
        "x" * 255,
        "line\ufffd\ufffdbreak.dcm",
    ]


def test_utf8_flagged_names_decode(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"Müller/Ä.dcm": b"x"})  # zipfile sets the flag

    assert member_kinds(path) == [("Müller/Ä.dcm", "file")]


@pytest.mark.parametrize("maker", [hostile.symlink, hostile.traditional_encrypted,
                                   hostile.directories, hostile.unsupported_compression])
def test_only_files_can_be_opened(tmp_path: Path, maker: Callable[[Path], Path]) -> None:
    with maker(tmp_path).open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        unreadable = [m for m in archive.members() if m.kind not in ("file", "dicomdir")]

        for member in unreadable:
            with pytest.raises(MemberRejected) as caught:
                archive.open(member)
            assert caught.value.code == "unreadable_member"
    assert unreadable


def test_member_from_another_archive_refused(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"a"})
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        stranger = MemberInfo(0, "a.dcm", 1, 1, "file")

        with pytest.raises(ValueError):
            archive.open(stranger)
