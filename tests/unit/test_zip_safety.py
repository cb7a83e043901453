"""Hostile archives end in the right classified result; good archives stream faithfully."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from pacs.errors import RejectedInput
from pacs.settings import Settings
from pacs.zip.safety import (
    ArchiveRejected,
    MemberInfo,
    MemberRejected,
    SafeArchive,
    ZipLimits,
    inspect_archive,
    sniff,
)
from pydicom.data import get_testdata_file

from tests import hostile

MIB = 1024**2
DEFAULTS = ZipLimits.from_settings(Settings.from_env({}))
LOOSE = ZipLimits(max_members=10**6, max_member_bytes=2**40, max_total_bytes=2**50,
                  max_ratio=10**9)
PEAK_BOUND = 64 * MIB


def _inspect(path: Path, limits: ZipLimits = DEFAULTS) -> list[MemberInfo]:
    with path.open("rb") as fp:
        return inspect_archive(fp, limits)


def _rejection(path: Path, limits: ZipLimits = DEFAULTS) -> str:
    with pytest.raises(ArchiveRejected) as caught:
        _inspect(path, limits)
    return caught.value.code


def _kinds(path: Path) -> list[tuple[str, str]]:
    return [(m.display_name, m.kind) for m in _inspect(path)]


def _peak_bytes(action: Callable[[], object]) -> int:
    """Peak traced allocation (Python and zlib) while ``action`` runs."""
    tracemalloc.start()
    try:
        action()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def _expect_rejection(path: Path, limits: ZipLimits = DEFAULTS) -> Callable[[], None]:
    def action() -> None:
        with pytest.raises(ArchiveRejected):
            _inspect(path, limits)
    return action


@pytest.fixture(scope="module")
def many_members(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile.many_empty_members(tmp_path_factory.mktemp("many"))


@pytest.fixture(scope="module")
def dicom_files() -> dict[str, bytes]:
    names = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")
    return {f"study/{name}": Path(get_testdata_file(name)).read_bytes() for name in names}


# --- Configuration and errors -------------------------------------------------------------


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


# --- sniff --------------------------------------------------------------------------------


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
    assert _kinds(path) == [("p", "file")]  # as a zip it is well formed: routing must refuse


def test_nested_archive_is_detectable_by_sniffing_the_member(tmp_path: Path) -> None:
    path = hostile.nested_zip(tmp_path)
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [member] = archive.members()

        with archive.open(member) as stream:
            head = stream.read(132)

    assert member.kind == "file"
    assert sniff(head) == "zip"


# --- Archive-level rejections -------------------------------------------------------------


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


def test_ratio_bomb_rejected(tmp_path: Path) -> None:
    path = hostile.ratio_bomb(tmp_path)

    assert _rejection(path) == "compression_ratio"
    assert [m.size for m in _inspect(path, LOOSE)] == [20 * MIB]


def test_small_members_are_exempt_from_the_ratio(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"zeros.bin": bytes(MIB - 1)})

    [member] = _inspect(path)

    assert member.size > DEFAULTS.max_ratio * member.compressed_size


def test_too_many_members_rejected_before_parsing(many_members: Path) -> None:
    peak = _peak_bytes(_expect_rejection(many_members))

    assert _rejection(many_members) == "too_many_members"
    assert peak < 1 * MIB  # no per-entry objects were built


def test_many_members_within_the_cap_parse(many_members: Path) -> None:
    members = _inspect(many_members, LOOSE)

    assert len(members) == 200_000
    assert members[-1] == MemberInfo(199_999, "199999", 0, 0, "file")


def test_member_count_cap_is_exact(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {f"{i}.dcm": b"x" for i in range(4)})
    limits = ZipLimits(3, MIB, MIB, 200)

    assert _rejection(path, limits) == "too_many_members"
    assert len(_inspect(path, ZipLimits(4, MIB, MIB, 200))) == 4


def test_declared_member_and_total_caps(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": bytes(600), "b.dcm": bytes(600)})

    assert _rejection(path, ZipLimits(10, 599, 10_000, 200)) == "member_too_large"
    assert _rejection(path, ZipLimits(10, 600, 1199, 200)) == "archive_too_large"
    assert len(_inspect(path, ZipLimits(10, 600, 1200, 200))) == 2


@pytest.mark.parametrize("content", [b"", b"not a zip at all" * 100])
def test_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(content)

    assert _rejection(path) == "not_a_zip"


def test_empty_file_is_not_a_zip(tmp_path: Path) -> None:
    assert _rejection(hostile.empty_file(tmp_path)) == "not_a_zip"


def test_empty_archive_is_fine(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {})

    assert _inspect(path) == []


def test_truncated_archive_is_not_a_zip(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"a" * 100})
    path.write_bytes(path.read_bytes()[:-5])

    assert _rejection(path) == "not_a_zip"


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


# --- Member kinds and names ---------------------------------------------------------------


def test_zip_slip_names_are_only_text(tmp_path: Path) -> None:
    kinds = _kinds(hostile.zip_slip(tmp_path))

    assert kinds == [(name, "file") for name in hostile.ZIP_SLIP_NAMES]


def test_symlink_member(tmp_path: Path) -> None:
    assert _kinds(hostile.symlink(tmp_path)) == [("link.dcm", "symlink"), ("plain.dcm", "file")]


def test_traditional_encryption(tmp_path: Path) -> None:
    assert _kinds(hostile.traditional_encrypted(tmp_path)) == [("secret.dcm", "encrypted")]


def test_aes_encryption_with_and_without_flag(tmp_path: Path) -> None:
    kinds = _kinds(hostile.aes_encrypted(tmp_path))

    assert kinds == [("aes.dcm", "encrypted"), ("aes_noflag.dcm", "encrypted")]


def test_unsupported_compression(tmp_path: Path) -> None:
    assert _kinds(hostile.unsupported_compression(tmp_path)) == [
        ("b.dcm", "unsupported_compression")]


def test_dicomdir_members(tmp_path: Path) -> None:
    kinds = _kinds(hostile.dicomdir(tmp_path))

    assert kinds == [("DICOMDIR", "dicomdir"), ("sub/DicomDir", "dicomdir"),
                     ("sub\\dicomdir", "dicomdir"), ("DICOMDIR.dcm", "file")]


def test_directory_members(tmp_path: Path) -> None:
    kinds = _kinds(hostile.directories(tmp_path))

    assert kinds == [("series1/", "directory"), ("windir", "directory"),
                     ("series1/a.dcm", "file")]


def test_odd_names_are_sanitised(tmp_path: Path) -> None:
    names = [m.display_name for m in _inspect(hostile.odd_names(tmp_path))]

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

    assert _kinds(path) == [("Müller/Ä.dcm", "file")]


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


# --- Streaming ----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_real_dicom_round_trip(tmp_path: Path, dicom_files: dict[str, bytes],
                               compression: int) -> None:
    path = hostile.valid_zip(tmp_path, dicom_files, compression=compression)
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        members = archive.members()

        streamed = {m.display_name: _read_in_chunks(archive, m) for m in members}
        whole = {m.display_name: archive.read_member(m, max_bytes=m.size) for m in members}

    assert [(m.index, m.kind) for m in members] == [(0, "file"), (1, "file"), (2, "file")]
    assert [m.size for m in members] == [len(c) for c in dicom_files.values()]
    assert streamed == dicom_files
    assert whole == dicom_files


def _read_in_chunks(archive: SafeArchive, member: MemberInfo, size: int = 1000) -> bytes:
    with archive.open(member) as stream:
        return b"".join(iter(lambda: stream.read(size), b""))


def test_interleaved_streams_keep_their_own_position(tmp_path: Path,
                                                     dicom_files: dict[str, bytes]) -> None:
    path = hostile.valid_zip(tmp_path, dicom_files)
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        first, second, _ = archive.members()
        a, b = archive.open(first), archive.open(second)

        parts = [a.read(100), b.read(100), a.read(), b.read()]

    assert parts[0] + parts[2] == dicom_files[first.display_name]
    assert parts[1] + parts[3] == dicom_files[second.display_name]


def test_zip64_archive_streams(tmp_path: Path) -> None:
    path = tmp_path / "zip64.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("big.dcm", "w", force_zip64=True) as out:
            out.write(b"abc" * 1000)

    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [member] = archive.members()
        content = archive.read_member(member, max_bytes=3000)

    assert content == b"abc" * 1000


def test_data_descriptor_archive_streams(tmp_path: Path) -> None:
    buffer = _Unseekable()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", b"a" * 500)
        zf.writestr("b.dcm", b"b" * 500)
    path = tmp_path / "descriptor.zip"
    path.write_bytes(buffer.getvalue())

    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        contents = [archive.read_member(m, 500) for m in archive.members()]

    assert contents == [b"a" * 500, b"b" * 500]
    assert b"PK\x07\x08" in path.read_bytes()  # written with data descriptors indeed


class _Unseekable(io.BytesIO):
    """Makes zipfile write data descriptors, as streaming writers do."""

    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("seek")


def test_lying_size_is_caught_while_streaming(tmp_path: Path) -> None:
    path = hostile.lying_size(tmp_path)
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [member] = archive.members()

        with pytest.raises(MemberRejected) as streamed, archive.open(member) as stream:
            stream.read()
        with pytest.raises(MemberRejected) as whole:
            archive.read_member(member, max_bytes=MIB)

    assert (member.kind, member.size) == ("file", 10)
    assert streamed.value.code == whole.value.code == "member_too_large"


def test_lying_size_peak_memory(tmp_path: Path) -> None:
    path = hostile.lying_size(tmp_path, real_bytes=50 * MIB)
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [member] = archive.members()

        def drain() -> None:
            with pytest.raises(MemberRejected), archive.open(member) as stream:
                stream.read()

        peak = _peak_bytes(drain)

    assert peak < 1 * MIB


def test_read_member_bound_checked_before_reading(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"a" * 100})
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [member] = archive.members()

        with pytest.raises(MemberRejected) as caught:
            archive.read_member(member, max_bytes=99)

    assert caught.value.code == "member_too_large"


def test_large_member_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = hostile.ratio_bomb(tmp_path, size=20 * MIB)
    with path.open("rb") as fp:
        archive = SafeArchive(fp, LOOSE)
        [member] = archive.members()
        total = 0

        def drain() -> None:
            nonlocal total
            with archive.open(member) as stream:
                for chunk in iter(lambda: stream.read(256 * 1024), b""):
                    total += len(chunk)

        peak = _peak_bytes(drain)

    assert total == 20 * MIB
    assert peak < 4 * MIB  # a fraction of the member: it was never held whole


def test_overlap_bomb_peak_memory(tmp_path: Path) -> None:
    path = hostile.overlap_bomb(tmp_path)

    peak = _peak_bytes(_expect_rejection(path, LOOSE))

    assert peak < PEAK_BOUND
    assert peak < 1 * MIB


def _member_bytes_corrupted(tmp_path: Path, mutate: Callable[[bytearray, int], None]) -> str:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"hello world " * 100})
    data = bytearray(path.read_bytes())
    mutate(data, 30 + len("a.dcm"))  # where the member's data starts
    path.write_bytes(bytes(data))
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [member] = archive.members()
        with pytest.raises(MemberRejected) as caught:
            archive.read_member(member, max_bytes=MIB)
    return caught.value.code


def test_crc_mismatch_is_corrupt_member(tmp_path: Path) -> None:
    def flip_crc(data: bytearray, _: int) -> None:
        at = data.rfind(b"PK\x01\x02") + 16
        struct.pack_into("<I", data, at, zlib.crc32(b"other"))
        struct.pack_into("<I", data, 14, zlib.crc32(b"other"))

    assert _member_bytes_corrupted(tmp_path, flip_crc) == "corrupt_member"


def test_garbled_deflate_is_corrupt_member(tmp_path: Path) -> None:
    def garble(data: bytearray, start: int) -> None:
        data[start] = 0xFF  # reserved block type 11

    assert _member_bytes_corrupted(tmp_path, garble) == "corrupt_member"


def test_short_stored_member_is_corrupt(tmp_path: Path) -> None:
    member = hostile.RawMember(b"short.dcm", payload=b"12345", size=10,
                               crc=zlib.crc32(b"1234567890"))
    path = hostile.raw_zip(tmp_path / "short.zip", [member])
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [info] = archive.members()
        with pytest.raises(MemberRejected) as caught:
            archive.read_member(info, max_bytes=100)

    assert caught.value.code == "corrupt_member"


def test_overlong_stored_member_is_too_large(tmp_path: Path) -> None:
    member = hostile.RawMember(b"long.dcm", payload=b"1234567890", size=5,
                               crc=zlib.crc32(b"12345"))
    path = hostile.raw_zip(tmp_path / "long.zip", [member])
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [info] = archive.members()
        with pytest.raises(MemberRejected) as caught:
            archive.read_member(info, max_bytes=100)

    assert caught.value.code == "member_too_large"


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


class _FakeBlob:
    """The little of ``storage.Blob`` that ``BlobReader`` uses, counting range requests."""

    chunk_size = None

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)
        self.requests = 0

    def download_as_bytes(self, start: int = 0, end: int | None = None, **_: object) -> bytes:
        self.requests += 1
        return self._data[start:None if end is None else end + 1]  # GCS ranges are inclusive


def test_works_over_a_gcs_blob_reader(tmp_path: Path, dicom_files: dict[str, bytes]) -> None:
    from google.cloud.storage.fileio import BlobReader

    path = hostile.valid_zip(tmp_path, dicom_files)
    blob = _FakeBlob(path.read_bytes())
    reader = BlobReader(blob, chunk_size=256 * 1024)

    archive = SafeArchive(reader, DEFAULTS)
    inspect_requests = blob.requests
    contents = {m.display_name: _read_in_chunks(archive, m) for m in archive.members()}

    assert contents == dicom_files
    assert inspect_requests <= 3  # tail, then one forward pass over directory and headers
