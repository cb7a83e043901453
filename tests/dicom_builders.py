"""DICOM files built byte by byte for the header tests, and header reads with the test
limits (the header reader's callers pass theirs from the settings).

The builders write explicit VR little endian Part 10 files element by element, so that a
test can make any element lie: a declared length longer than the file, an undefined length
never closed, sequences nested thousands deep. ``part10(identity() + image())`` is a small,
valid secondary capture image.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest
from pacs.dicom.header import HeaderRejected, InstanceHeader, read_header
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

MIB = 1024**2
LIMITS = {"max_header_bytes": 64 * MIB, "inflate_max_bytes": 256 * MIB}
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"


# --- Reading with the test limits ------------------------------------------------------------

def read_path(path: Path, **limits: int) -> InstanceHeader:
    with open(path, "rb") as f:
        return read_header(f, os.path.getsize(path), **{**LIMITS, **limits})


def read_bytes(data: bytes, **limits: int) -> InstanceHeader:
    return read_header(io.BytesIO(data), len(data), **{**LIMITS, **limits})


def rejection(data: bytes, **limits: int) -> HeaderRejected:
    with pytest.raises(HeaderRejected) as info:
        read_bytes(data, **limits)
    return info.value


# --- Builders -------------------------------------------------------------------------------

def el(tag: int, vr: str, value: bytes, *, length: int | None = None) -> bytes:
    """One explicit VR little endian element; ``length`` overrides the declared length."""
    declared = len(value) if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in ("OB", "OW", "OF", "OD", "OL", "SQ", "UN", "UT", "UC", "UR", "OV"):
        return head + b"\0\0" + struct.pack("<L", declared) + value
    return head + struct.pack("<H", declared) + value


def implicit_el(tag: int, value: bytes, *, length: int | None = None) -> bytes:
    declared = len(value) if length is None else length
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, declared) + value


def text(value: str) -> bytes:
    raw = value.encode()
    return raw + (b"\0" if len(raw) % 2 else b"")


def padded(value: str) -> bytes:
    raw = value.encode()
    return raw + (b" " if len(raw) % 2 else b"")


def part10(body: bytes, ts: str = EXPLICIT_LE) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    meta.TransferSyntaxUID = ts
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    return b"\x7fELF" + bytes(124) + b"DICM" + buf.getvalue() + body


def identity(name: str = "SECRET^PATIENT") -> bytes:
    return b"".join([
        el(0x00080016, "UI", text("1.2.840.10008.5.1.4.1.1.7")),
        el(0x00080018, "UI", text("1.2.3.4.5")),
        el(0x00100010, "PN", padded(name)),
        el(0x0020000D, "UI", text("1.2.3")),
        el(0x0020000E, "UI", text("1.2.3.4")),
    ])


def image(rows: int = 4, columns: int = 4, pixel_bytes: bytes | None = None,
          declared: int | None = None) -> bytes:
    pixels = bytes(range(rows * columns)) if pixel_bytes is None else pixel_bytes
    return b"".join([
        el(0x00280002, "US", struct.pack("<H", 1)),
        el(0x00280004, "CS", padded("MONOCHROME2")),
        el(0x00280010, "US", struct.pack("<H", rows)),
        el(0x00280011, "US", struct.pack("<H", columns)),
        el(0x00280100, "US", struct.pack("<H", 8)),
        el(0x00280101, "US", struct.pack("<H", 8)),
        el(0x00280102, "US", struct.pack("<H", 7)),
        el(0x00280103, "US", struct.pack("<H", 0)),
        el(0x7FE00010, "OB", pixels, length=declared),
    ])


def nested_undefined(depth: int) -> bytes:
    inner = b""
    for _ in range(depth):
        inner = (struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<L", 0xFFFFFFFF)
                 + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
                 + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
                 + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
    return inner


def nested_defined(depth: int) -> bytes:
    inner = el(0x0040A160, "UT", padded("leaf"))
    for _ in range(depth):
        item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
        inner = el(0x0040A730, "SQ", item)
    return inner


def small_valid() -> bytes:
    return part10(identity() + image())
