"""Generators of hostile (and a few benign) ZIP files for tests.

Every function writes into ``directory`` under a fixed, deterministic name and returns the
path. Archives that :mod:`zipfile` cannot write (overlaps, NUL names, lying headers, fake
encryption) are assembled byte by byte with :class:`RawMember` and :func:`raw_zip`.
"""

from __future__ import annotations

import hashlib
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MIB = 1024**2
STORED, DEFLATED, AES = 0, 8, 99
FLAG_ENCRYPTED, FLAG_UTF8 = 0x0001, 0x0800
_DOS_DATE = 0x21  # 1980-01-01, so output is byte-for-byte reproducible

ZIP_SLIP_NAMES = ("../evil.dcm", "/etc/abs.dcm", "..\\win.dcm", "C:\\drive.dcm")


@dataclass(frozen=True)
class RawMember:
    """One entry exactly as it should appear on disk (nothing is validated)."""

    name: bytes
    payload: bytes = b""  # the bytes stored in the archive (compressed/encrypted already)
    method: int = STORED
    flags: int = 0
    crc: int | None = None  # default: CRC of the payload (right for stored members)
    size: int | None = None  # declared uncompressed size; default: payload length
    external_attr: int = 0
    create_system: int = 3
    extra: bytes = b""

    @property
    def declared_crc(self) -> int:
        return zlib.crc32(self.payload) if self.crc is None else self.crc

    @property
    def declared_size(self) -> int:
        return len(self.payload) if self.size is None else self.size


def deflate(content: bytes) -> bytes:
    """Raw deflate (no zlib header), as stored in ZIP members."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(content) + compressor.flush()


def deflated_member(name: bytes, content: bytes, **fields: object) -> RawMember:
    """A correct deflated member; ``fields`` may override any header field to make it lie."""
    values: dict[str, object] = {"payload": deflate(content), "method": DEFLATED,
                                 "crc": zlib.crc32(content), "size": len(content)}
    values.update(fields)
    return RawMember(name, **values)  # type: ignore[arg-type]


def local_header(member: RawMember) -> bytes:
    return struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", 20, member.flags, member.method, 0, _DOS_DATE,
        member.declared_crc, len(member.payload), member.declared_size, len(member.name),
        len(member.extra),
    ) + member.name + member.extra


def central_header(member: RawMember, offset: int) -> bytes:
    return struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", (member.create_system << 8) | 20, 20,
        member.flags, member.method, 0, _DOS_DATE, member.declared_crc, len(member.payload),
        member.declared_size, len(member.name), len(member.extra), 0, 0, 0,
        member.external_attr, offset,
    ) + member.name + member.extra


def end_records(count: int, cd_offset: int, cd_size: int) -> bytes:
    """EOCD, preceded by the ZIP64 record and locator when the count needs them."""
    if count <= 0xFFFF:
        return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size,
                           cd_offset, 0)
    zip64_at = cd_offset + cd_size
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                         cd_size, cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, zip64_at, 1)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF,
                       min(cd_size, 0xFFFFFFFF), min(cd_offset, 0xFFFFFFFF), 0)
    return record + locator + eocd


def raw_zip(path: Path, members: Iterable[RawMember]) -> Path:
    """Write members sequentially with a matching central directory (streams to disk)."""
    central: list[bytes] = []
    offset = 0
    with path.open("wb") as out:
        for member in members:
            central.append(central_header(member, offset))
            offset += out.write(local_header(member))
            offset += out.write(member.payload)
        directory = b"".join(central)
        out.write(directory)
        out.write(end_records(len(central), offset, len(directory)))
    return path


def _garbage(n: int, seed: bytes) -> bytes:
    """Deterministic bytes that look random."""
    blocks = (hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(n // 32 + 1))
    return b"".join(blocks)[:n]


# --- Benign -------------------------------------------------------------------------------


def valid_zip(directory: Path, files: Mapping[str, bytes], name: str = "valid.zip",
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A well-formed archive of ``files`` (name -> content), written by :mod:`zipfile`."""
    path = directory / name
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for member_name, content in files.items():
            info = zipfile.ZipInfo(member_name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            zf.writestr(info, content)
    return path


# --- Archive-level attacks ----------------------------------------------------------------


def overlap_bomb(directory: Path, files: int = 64, kernel_bytes: int = 2 * MIB) -> Path:
    """David Fifield's quoted-overlap bomb: every entry inflates the same shared kernel.

    Layout: ``LFH0 q0 LFH1 q1 ... LFH(n-1) kernel`` where ``q_i`` is a non-final stored
    deflate block quoting ``LFH(i+1)``; entry ``i``'s data runs from ``q_i`` to the end of the
    kernel. The archive is valid for :mod:`zipfile` (CRCs are right) yet unpacks to
    ``files * kernel_bytes`` bytes from a few kilobytes.
    """
    kernel_out = bytes(kernel_bytes)
    kernel = deflate(kernel_out)
    names = [f"bomb{i:04d}.bin".encode() for i in range(files)]
    members: list[RawMember] = []
    headers_after = b""  # LFH(i+1) ... LFH(n-1): what entry i inflates to before the kernel
    quoted_after = b""  # the same headers as stored, each behind its quote block
    for name in reversed(names):
        member = RawMember(
            name, payload=bytes(len(quoted_after) + len(kernel)),  # placeholder of the size
            method=DEFLATED, crc=zlib.crc32(kernel_out, zlib.crc32(headers_after)),
            size=len(headers_after) + kernel_bytes,
        )
        members.insert(0, member)
        header = local_header(member)
        headers_after = header + headers_after
        quoted_after = _quote(header) + header + quoted_after
    body = quoted_after[5:] + kernel  # the first header needs no quote
    central, offset = [], 0
    for member in members:
        central.append(central_header(member, offset))
        offset += len(local_header(member)) + 5
    cd = b"".join(central)
    path = directory / "overlap_bomb.zip"
    path.write_bytes(body + cd + end_records(files, len(body), len(cd)))
    return path


def _quote(header: bytes) -> bytes:
    """A non-final stored deflate block header covering ``header`` (5 bytes, byte aligned)."""
    return b"\x00" + struct.pack("<HH", len(header), len(header) ^ 0xFFFF)


def local_extra_overlap(directory: Path) -> Path:
    """Entry 0's local extra field swallows entry 1, which the central directory alone cannot
    show (its name/size-based span looks disjoint); only reading the local header does."""
    inner = RawMember(b"inner.dcm", payload=b"inner")
    inner_bytes = local_header(inner) + inner.payload
    outer = RawMember(b"outer.dcm",
                      extra=struct.pack("<HH", 0xCAFE, len(inner_bytes)) + inner_bytes)
    outer_local = local_header(outer)  # empty payload: lower-bound span ends at the extra
    inner_at = 30 + len(outer.name) + 4
    plain_outer = RawMember(outer.name)  # the central copy need not carry the extra
    cd = central_header(plain_outer, 0) + central_header(inner, inner_at)
    path = directory / "local_extra_overlap.zip"
    path.write_bytes(outer_local + cd + end_records(2, len(outer_local), len(cd)))
    return path


def ratio_bomb(directory: Path, size: int = 20 * MIB) -> Path:
    """One member of ``size`` zero bytes, deflated about 1000:1."""
    return valid_zip(directory, {"zeros.bin": bytes(size)}, name="ratio_bomb.zip")


def many_empty_members(directory: Path, count: int = 200_000) -> Path:
    """``count`` empty stored members (ZIP64 end records when over 65,535); about 20 MB."""
    members = (RawMember(f"{i:06d}".encode()) for i in range(count))
    return raw_zip(directory / f"empty_members_{count}.zip", members)


def lying_size(directory: Path, real_bytes: int = 10 * MIB, declared: int = 10) -> Path:
    """Both headers declare ``declared`` bytes (with that prefix's CRC, so ``zipfile``
    silently truncates) but the deflate stream holds ``real_bytes``."""
    member = deflated_member(b"liar.dcm", bytes(real_bytes), size=declared,
                             crc=zlib.crc32(bytes(declared)))
    return raw_zip(directory / "lying_size.zip", [member])


def polyglot(directory: Path, dicom: bytes | None = None) -> Path:
    """A file that is both a ZIP (``PK\\x03\\x04`` at 0) and a DICOM (``DICM`` at 128).

    The first member is stored, so its data lands at a known offset: the local header fills
    part of the DICOM preamble and the rest of ``dicom`` (a Part 10 file) follows.
    """
    dicom = dicom if dicom is not None else bytes(128) + b"DICM" + bytes(64)
    name = b"p"
    header_len = 30 + len(name)
    payload = bytes(128 - header_len) + dicom[128:]
    return raw_zip(directory / "polyglot.dcm", [RawMember(name, payload=payload)])


def empty_file(directory: Path) -> Path:
    path = directory / "empty.zip"
    path.write_bytes(b"")
    return path


# --- Member-level oddities ----------------------------------------------------------------


def nested_zip(directory: Path) -> Path:
    """A zip whose only member is another zip."""
    inner = valid_zip(directory, {"inner.dcm": b"inner"}, name="inner.zip")
    return valid_zip(directory, {"inner.zip": inner.read_bytes()}, name="nested.zip")


def zip_slip(directory: Path) -> Path:
    """Members named to escape an extraction directory (names kept verbatim by zipfile)."""
    return valid_zip(directory, {name: b"slip" for name in ZIP_SLIP_NAMES}, name="zip_slip.zip")


def symlink(directory: Path) -> Path:
    """A Unix symlink member pointing at ``/etc/passwd``, plus one ordinary file."""
    path = directory / "symlink.zip"
    with zipfile.ZipFile(path, "w") as zf:
        link = zipfile.ZipInfo("link.dcm", date_time=(1980, 1, 1, 0, 0, 0))
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr(zipfile.ZipInfo("plain.dcm", date_time=(1980, 1, 1, 0, 0, 0)), b"plain")
    return path


def traditional_encrypted(directory: Path) -> Path:
    """A ZipCrypto member: flag bit 0 set, 12-byte header plus garbage as its data."""
    member = RawMember(b"secret.dcm", payload=_garbage(12 + 100, b"zipcrypto"),
                       method=DEFLATED, flags=FLAG_ENCRYPTED, crc=0x12345678, size=100)
    return raw_zip(directory / "encrypted.zip", [member])


def aes_encrypted(directory: Path) -> Path:
    """WinZip AES members (method 99, extra 0x9901): one with flag bit 0 as WinZip writes it,
    one without, so detection by method alone is exercised."""
    aes_extra = struct.pack("<HHH2sBH", 0x9901, 7, 2, b"AE", 3, DEFLATED)
    payload = _garbage(16 + 2 + 100 + 10, b"aes")  # salt, verifier, data, auth code
    members = [
        RawMember(b"aes.dcm", payload=payload, method=AES, flags=FLAG_ENCRYPTED, crc=0,
                  size=100, extra=aes_extra),
        RawMember(b"aes_noflag.dcm", payload=payload, method=AES, crc=0, size=100,
                  extra=aes_extra),
    ]
    return raw_zip(directory / "aes.zip", members)


#: Raw names written by :func:`odd_names`, with their flags.
ODD_NAMES: tuple[tuple[bytes, int], ...] = (
    (b"nul\x00name.dcm", 0),
    (b"caf\xe9.dcm", 0),  # latin-1 bytes, no UTF-8 flag: cp437 applies
    (b"bad\xff\xfe.dcm", FLAG_UTF8),  # claims UTF-8, is not
    (b"esc\x1b[31m.dcm", 0),
    ("\u202egnp.dcm".encode(), FLAG_UTF8),  # right-to-left override spoofs the extension
    (b"x" * 1000, 0),
    (b"line\r\nbreak.dcm", 0),
)


def odd_names(directory: Path) -> Path:
    """Members named with NUL, non-UTF-8 bytes, invalid UTF-8, escapes, bidi and length."""
    members = [RawMember(name, payload=b"odd", flags=flags) for name, flags in ODD_NAMES]
    return raw_zip(directory / "odd_names.zip", members)


def unsupported_compression(directory: Path) -> Path:
    """A member claiming bzip2 (method 12)."""
    return raw_zip(directory / "bzip2.zip",
                   [RawMember(b"b.dcm", payload=b"BZh9garbage", method=12, size=100)])


def dicomdir(directory: Path) -> Path:
    """DICOMDIR members in several spellings, and one name that only starts with it."""
    files = {"DICOMDIR": b"dir", "sub/DicomDir": b"dir", "sub\\dicomdir": b"dir",
             "DICOMDIR.dcm": b"file"}
    return valid_zip(directory, files, name="dicomdir.zip")


def directories(directory: Path) -> Path:
    """A Unix directory entry, a Windows one (attribute 0x10, no slash) and a file."""
    path = directory / "directories.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.mkdir("series1")
        windows = zipfile.ZipInfo("windir", date_time=(1980, 1, 1, 0, 0, 0))
        windows.create_system = 0
        windows.external_attr = 0x10
        zf.writestr(windows, b"")
        zf.writestr(zipfile.ZipInfo("series1/a.dcm", date_time=(1980, 1, 1, 0, 0, 0)), b"a")
    return path
