"""Streaming members of uploaded ZIP archives (``pacs.zip.stream`` through
``pacs.zip.safety.SafeArchive``): good archives (deflated, stored, ZIP64, with data
descriptors, over a Cloud Storage blob reader) stream faithfully, each stream keeping its
own position; lying sizes, CRC mismatches, garbled deflate data and short or overlong
stored members are refused while streaming, in bounded memory.

The archive-level checks: ``test_zip_directory.py``; members' names and kinds:
``test_zip_members.py``; routing by the first bytes: ``test_zip_sniff.py``.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pacs.zip.safety import MemberInfo, MemberRejected, SafeArchive
from pydicom.data import get_testdata_file

from tests import hostile
from tests.zip_helpers import DEFAULTS, LOOSE, MIB, peak_bytes


@pytest.fixture(scope="module")
def dicom_files() -> dict[str, bytes]:
    names = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")
    return {f"study/{name}": Path(get_testdata_file(name)).read_bytes() for name in names}


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


# --- Refused while streaming ----------------------------------------------------------------


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

        peak = peak_bytes(drain)

    assert peak < 1 * MIB


def _read_rejection(path: Path, max_bytes: int) -> str:
    """The code the archive's one member is refused with when read whole."""
    with path.open("rb") as fp:
        archive = SafeArchive(fp, DEFAULTS)
        [member] = archive.members()
        with pytest.raises(MemberRejected) as caught:
            archive.read_member(member, max_bytes=max_bytes)
    return caught.value.code


def test_read_member_bound_checked_before_reading(tmp_path: Path) -> None:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"a" * 100})

    assert _read_rejection(path, max_bytes=99) == "member_too_large"


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

        peak = peak_bytes(drain)

    assert total == 20 * MIB
    assert peak < 4 * MIB  # a fraction of the member: it was never held whole


def _member_bytes_corrupted(tmp_path: Path, mutate: Callable[[bytearray, int], None]) -> str:
    path = hostile.valid_zip(tmp_path, {"a.dcm": b"hello world " * 100})
    data = bytearray(path.read_bytes())
    mutate(data, 30 + len("a.dcm"))  # where the member's data starts
    path.write_bytes(bytes(data))
    return _read_rejection(path, max_bytes=MIB)


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


def _stored_member_rejection(path: Path, name: bytes, payload: bytes, declared: bytes) -> str:
    """A stored member holding ``payload`` whose headers declare the size and CRC of
    ``declared``, read whole."""
    member = hostile.RawMember(name, payload=payload, size=len(declared),
                               crc=zlib.crc32(declared))
    return _read_rejection(hostile.raw_zip(path, [member]), max_bytes=100)


def test_short_stored_member_is_corrupt(tmp_path: Path) -> None:
    code = _stored_member_rejection(tmp_path / "short.zip", b"short.dcm", payload=b"12345",
                                    declared=b"1234567890")

    assert code == "corrupt_member"


def test_overlong_stored_member_is_too_large(tmp_path: Path) -> None:
    code = _stored_member_rejection(tmp_path / "long.zip", b"long.dcm", payload=b"1234567890",
                                    declared=b"12345")

    assert code == "member_too_large"
