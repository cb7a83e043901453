"""The archive-level checks of uploaded ZIP archives (``pacs.zip.directory``, its limits
and ``pacs.zip.errors``): zip bombs (quoted overlap, ratio), too many members refused
before parsing, declared size caps, files that are not archives, and central directories
or local headers that lie; inspection reads the directory and headers only.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from pacs.errors import RejectedInput
from pacs.settings import Settings
from pacs.zip.safety import ArchiveRejected, MemberInfo, MemberRejected, ZipLimits, inspect_archive

from tests import hostile
from tests.zip_helpers import DEFAULTS, LOOSE, MIB, inspect_file, peak_bytes

PEAK_BOUND = 64 * MIB


def _rejection(path: Path, limits: ZipLimits = DEFAULTS) -> str:
    with pytest.raises(ArchiveRejected) as caught:
        inspect_file(path, limits)
    return caught.value.code


def _expect_rejection(path: Path, limits: ZipLimits = DEFAULTS) -> Callable[[], None]:
    def action() -> None:
        with pytest.raises(ArchiveRejected):
            inspect_file(path, limits)
    return action


@pytest.fixture(scope="module")
def many_members(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile.many_empty_members(tmp_path_factory.mktemp("many"))


# --- Configuration and errors ---------------------------------------------------------------


def test_limits_come_from_settings() -> None:
    settings = Settings.from_env({"PACS_ZIP_MAX_MEMBERS": "7", "PACS_ZIP_MAX_RATIO": "9",
                                  "PACS_ZIP_MAX_MEMBER_BYTES": "11",
                                  "PACS_ZIP_MAX_TOTAL_BYTES": "13"})

    limits = ZipLimits.from_settings(settings)

    assert limits == ZipLimits(max_members=7, max_member_bytes=11, max_total_bytes=13,
                               max_ratio=9)


def test_rejections_are_rejected_input_with_known_codes() -> None:
    error = ArchiveRejected("overlapping_entries")

    assert isinstance(error, RejectedInput)
    assert error.code == "overlapping_entries"
    assert error.http_status == 422
    assert issubclass(MemberRejected, ArchiveRejected)
    with pytest.raises(ValueError):
        ArchiveRejected("no_such_code")
    with pytest.raises(ValueError):
        MemberRejected("not_a_zip")  # archive-level codes are not member codes


# --- Archive-level rejections ---------------------------------------------------------------


def test_overlap_bomb_rejected(tmp_path: Path) -> None:
    path = hostile.overlap_bomb(tmp_path)

    assert _rejection(path) == "overlapping_entries"
    assert _rejection(path, LOOSE) == "overlapping_entries"  # not just the size caps


def test_overlap_bomb_is_a_real_bomb_for_zipfile(tmp_path: Path) -> None:
    path = hostile.overlap_bomb(tmp_path, files=8, kernel_bytes=MIB)

    with zipfile.ZipFile(path) as zf:
        sizes = [len(zf.read(info)) for info in zf.infolist()]

    assert path.stat().st_size < 8192
    assert sum(sizes) > 8 * MIB


def test_overlap_hidden_in_local_extra_rejected(tmp_path: Path) -> None:
    path = hostile.local_extra_overlap(tmp_path)

    assert _rejection(path, LOOSE) == "overlapping_entries"


def test_overlap_bomb_peak_memory(tmp_path: Path) -> None:
    path = hostile.overlap_bomb(tmp_path)

    peak = peak_bytes(_expect_rejection(path, LOOSE))

    assert peak < PEAK_BOUND
    assert peak < 1 * MIB


def test_ratio_bomb_rejected(tmp_path: Path) -> None:
    path = hostile.ratio_bomb(tmp_path)

    assert _rejection(path) == "compression_ratio"
    assert [m.size for m in inspect_file(path, LOOSE)] == [20 * MIB]


def test_small_members_are_exempt_from_the_ratio(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"zeros.bin": bytes(MIB - 1)})

    [member] = inspect_file(path)

    assert member.size > DEFAULTS.max_ratio * member.compressed_size


def test_too_many_members_rejected_before_parsing(many_members: Path) -> None:
    peak = peak_bytes(_expect_rejection(many_members))

    assert _rejection(many_members) == "too_many_members"
    assert peak < 1 * MIB  # no per-entry objects were built


def test_many_members_within_the_cap_parse(many_members: Path) -> None:
    members = inspect_file(many_members, LOOSE)

    assert len(members) == 200_000
    assert members[-1] == MemberInfo(199_999, "199999", 0, 0, "file")


def test_member_count_cap_is_exact(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {f"{i}.dcm": b"x" for i in range(4)})
    limits = ZipLimits(3, MIB, MIB, 200)

    assert _rejection(path, limits) == "too_many_members"
    assert len(inspect_file(path, ZipLimits(4, MIB, MIB, 200))) == 4


def test_declared_member_and_total_caps(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": bytes(600), "b.dcm": bytes(600)})

    assert _rejection(path, ZipLimits(10, 599, 10_000, 200)) == "member_too_large"
    assert _rejection(path, ZipLimits(10, 600, 1199, 200)) == "archive_too_large"
    assert len(inspect_file(path, ZipLimits(10, 600, 1200, 200))) == 2


@pytest.mark.parametrize("content", [b"", b"not a zip at all" * 100])
def test_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(content)

    assert _rejection(path) == "not_a_zip"


def test_empty_file_is_not_a_zip(tmp_path: Path) -> None:
    assert _rejection(hostile.empty_file(tmp_path)) == "not_a_zip"


def test_empty_archive_is_fine(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {})

    assert inspect_file(path) == []


def test_truncated_archive_is_not_a_zip(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"a" * 100})
    path.write_bytes(path.read_bytes()[:-5])

    assert _rejection(path) == "not_a_zip"


# --- Lying directories and headers ----------------------------------------------------------


def _patch_eocd(path: Path, fmt: str, offsets: tuple[int, ...], value: int) -> None:
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    for offset in offsets:
        struct.pack_into(fmt, data, at + offset, value)
    path.write_bytes(bytes(data))


def test_count_understating_the_directory_is_corrupt(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {f"{i}.dcm": b"x" for i in range(3)})
    _patch_eocd(path, "<H", (8, 10), 1)  # entries on disk, total

    assert _rejection(path) == "corrupt_archive"


def test_directory_offset_lie_is_corrupt(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"x" * 50})
    _patch_eocd(path, "<I", (16,), 7)

    assert _rejection(path) == "corrupt_archive"


def test_local_header_name_mismatch_is_corrupt(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"x" * 50})
    data = path.read_bytes()
    path.write_bytes(data[:30] + b"b" + data[31:])  # the local copy of the name only

    assert _rejection(path) == "corrupt_archive"


def test_prepended_data_is_corrupt(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"x" * 50})
    path.write_bytes(b"MZ" + bytes(100) + path.read_bytes())

    assert _rejection(path) == "corrupt_archive"


def test_reads_only_directory_and_headers_when_inspecting(tmp_path: Path) -> None:
    """Inspection must not read member content (production reads from GCS)."""
    path = hostile.valid_zip(tmp_path, {"a.dcm": bytes(range(256)) * 4000},
                             compression=zipfile.ZIP_STORED)
    with path.open("rb") as raw:
        counting = _CountingReader(raw)
        inspect_archive(counting, DEFAULTS)

    assert counting.bytes_read < 70_000  # tail window + headers, not the ~1 MB member


class _CountingReader(io.RawIOBase):
    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.bytes_read += len(data)
        return data
