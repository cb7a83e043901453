"""Header reading of untrusted DICOM files: the whole pydicom corpus plus hostile inputs."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import pydicom
import pytest
from pacs.dicom.fields import FIELD_NAMES, field_values_from_pydicom
from pacs.dicom.header import HeaderRejected, InstanceHeader, read_header, zero_preamble
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels.utils import get_expected_length

from tests.dicom_corpus import corpus, corpus_file

MIB = 1024**2
LIMITS = {"max_header_bytes": 64 * MIB, "inflate_max_bytes": 256 * MIB}
CODES = {"not_dicom", "missing_uid", "invalid_uid", "corrupt", "truncated_pixel_data",
         "too_large", "deflate_bomb"}
UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"

CORPUS = corpus()


def read_path(path: Path, **limits: int) -> InstanceHeader:
    with open(path, "rb") as f:
        return read_header(f, os.path.getsize(path), **{**LIMITS, **limits})


def read_bytes(data: bytes, **limits: int) -> InstanceHeader:
    return read_header(io.BytesIO(data), len(data), **{**LIMITS, **limits})


def rejection(data: bytes, **limits: int) -> HeaderRejected:
    with pytest.raises(HeaderRejected) as info:
        read_bytes(data, **limits)
    return info.value


# --------------------------------------------------------------------------- reference


class Reference:
    """What plain pydicom (no force, full read) says about one corpus file."""

    def __init__(self, path: Path) -> None:
        self.ds: Dataset | None = None
        self.fields: dict | None = None
        self.expected_code: str | None = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
                truncated_value = self._truncated_value(ds)  # before conversion
                list(ds.iterall())  # every sequence must convert too
            except Exception:  # noqa: BLE001 - any failure means "pydicom cannot read it"
                return
            meta = getattr(ds, "file_meta", None)
            if not meta or not meta.get("TransferSyntaxUID"):
                return
            if not all(ds.get(name) for name in UIDS):
                return
            self.ds = ds
            self.fields = field_values_from_pydicom(ds)
            self.expected_code = truncated_value or self._short_pixels(ds)

    @staticmethod
    def _truncated_value(ds: Dataset) -> str | None:
        """A raw value shorter than its declared length: the file ends inside it."""
        for elem in ds.elements():
            if (isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF
                    and isinstance(elem.value, bytes) and len(elem.value) < elem.length):
                return "truncated_pixel_data" if elem.tag >> 16 == 0x7FE0 else "corrupt"
        return None

    @staticmethod
    def _short_pixels(ds: Dataset) -> str | None:
        """Native pixel data shorter than the image pixel module implies."""
        ts = ds.file_meta.TransferSyntaxUID
        if "PixelData" in ds and not ts.is_compressed and ds.get("Rows"):
            try:
                expected = int(get_expected_length(ds))
            except (TypeError, ValueError):  # e.g. NumberOfFrames "1A" in badVR.dcm
                expected = 0
            if len(ds.PixelData) < expected:
                return "truncated_pixel_data"
        return None

    @property
    def readable(self) -> bool:
        return self.fields is not None


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_is_read_like_pydicom_or_rejected(name: str) -> None:
    # Arrange
    path = CORPUS[name]
    ref = Reference(path)

    # Act
    try:
        header, error = read_path(path), None
    except HeaderRejected as err:
        header, error = None, err

    # Assert
    if ref.readable and ref.expected_code is None:
        assert error is None, f"rejected with {error.code}" if error else ""
        assert header.fields == ref.fields
        assert header.study_instance_uid == str(ref.ds.StudyInstanceUID)
        assert header.series_instance_uid == str(ref.ds.SeriesInstanceUID)
        assert header.sop_instance_uid == str(ref.ds.SOPInstanceUID)
        assert header.transfer_syntax_uid == str(ref.ds.file_meta.TransferSyntaxUID)
        # Independent of the shared extraction function:
        name_elem = ref.ds.get("PatientName")
        assert header.fields["PatientName"] == (str(name_elem) if name_elem else None)
        assert header.fields["Rows"] == ref.ds.get("Rows")
        assert header.has_pixel_data == ("PixelData" in ref.ds)
        json.dumps(header.fields, allow_nan=False)
    elif ref.readable:
        assert error is not None and error.code == ref.expected_code
    else:
        assert error is not None and error.code in CODES


def test_corpus_is_complete() -> None:
    # Arrange
    names = {path.name for path in CORPUS.values()}

    # Act / Assert: pydicom's own files, its charset files and the pydicom-data package.
    assert {"CT_small.dcm", "image_dfl.dcm", "MR_truncated.dcm", "chrH31.dcm", "chrX1.dcm",
            "693_UNCI.dcm", "emri_small_RLE.dcm"} <= names
    assert len(CORPUS) > 250


@pytest.mark.parametrize(("name", "code"), [
    ("MR_truncated.dcm", "truncated_pixel_data"),
    ("emri_small_jpeg_2k_lossless_too_short.dcm", "truncated_pixel_data"),
    ("rtplan_truncated.dcm", "corrupt"),
    ("no_meta.dcm", "not_dicom"),
    ("ExplVR_LitEndNoMeta.dcm", "not_dicom"),
    ("meta_missing_tsyntax.dcm", "not_dicom"),
    ("zipMR.gz", "not_dicom"),
    ("crayons.icc", "not_dicom"),
    ("DICOMDIR", "missing_uid"),
    ("fall.dcm", "missing_uid"),
    ("OT-PAL-8-face.dcm", "not_dicom"),
])
def test_known_bad_corpus_files_get_their_code(name: str, code: str) -> None:
    # Arrange
    path = corpus_file(name)

    # Act
    with pytest.raises(HeaderRejected) as info:
        read_path(path)

    # Assert
    assert info.value.code == code
    assert info.value.http_status == 422


@pytest.mark.parametrize(("name", "expected"), [
    ("chrH31.dcm", {"PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう"}),
    ("chrX1.dcm", {"PatientName": "Wang^XiaoDong=王^小東"}),
    ("chrRuss.dcm", {"PatientName": "Люкceмбypг"}),
    ("chrArab.dcm", {"PatientName": "قباني^لنزار"}),
    ("CT_small.dcm", {
        "PatientName": "CompressedSamples^CT1", "Modality": "CT", "Rows": 128,
        "Columns": 128, "NumberOfFrames": 1, "TransferSyntaxUID": EXPLICIT_LE,
        "StudyInstanceUID": "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
        "is_image": True, "has_pixel_data": True,
    }),
    ("emri_small.dcm", {"NumberOfFrames": 10, "Rows": 64, "PatientName": None}),
    ("image_dfl.dcm", {"TransferSyntaxUID": DEFLATED, "is_image": True}),
    ("test-SR.dcm", {"Modality": "SR", "is_image": False, "has_pixel_data": False,
                     "NumberOfFrames": None}),
    ("waveform_ecg.dcm", {"is_image": False}),
    ("rtstruct.dcm", None),
])
def test_known_values(name: str, expected: dict | None) -> None:
    # Arrange
    path = corpus_file(name)
    if expected is None:  # rtstruct.dcm ships without a preamble: not Part 10
        with pytest.raises(HeaderRejected):
            read_path(path)
        return

    # Act
    header = read_path(path)

    # Assert
    assert {key: header.fields[key] for key in expected} == expected
    assert list(header.fields) == list(FIELD_NAMES)


def test_ct_fields_have_plain_types() -> None:
    # Arrange / Act
    fields = read_path(corpus_file("693_UNCI.dcm")).fields

    # Assert
    assert (fields["Rows"], fields["Columns"]) == (512, 512)
    assert isinstance(fields["ImagePositionPatient"], list) and len(
        fields["ImagePositionPatient"]) == 3
    assert all(type(v) is float for v in fields["ImageOrientationPatient"])
    assert type(fields["PatientName"]) is str and type(fields["InstanceNumber"]) is int
    assert json.loads(json.dumps(fields)) == fields


# --------------------------------------------------------------------------- builders


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


# --------------------------------------------------------------------------- hostile


def test_generated_baseline_file_is_accepted() -> None:
    # Arrange
    data = small_valid()

    # Act
    header = read_bytes(data)

    # Assert
    assert header.fields["PatientName"] == "SECRET^PATIENT"
    assert header.is_image and header.fields["NumberOfFrames"] == 1
    assert header.pixel_data_length == 16
    assert data[header.pixel_data_offset:header.pixel_data_offset + 16] == bytes(range(16))


@pytest.mark.parametrize("depth", [5, 40])
def test_moderate_nesting_is_accepted(depth: int) -> None:
    # Arrange
    undefined = part10(identity() + nested_undefined(depth) + image())
    defined = part10(identity() + nested_defined(depth) + image())

    # Act / Assert
    assert read_bytes(undefined).is_image
    assert read_bytes(defined).is_image


@pytest.mark.parametrize("builder", [nested_undefined, nested_defined])
def test_sequences_nested_300_deep_are_corrupt(builder) -> None:
    # Arrange
    data = part10(identity() + builder(300) + image())

    # Act
    error = rejection(data)

    # Assert
    assert error.code == "corrupt"


def test_sequences_nested_5000_deep_do_not_crash() -> None:
    # Arrange
    data = part10(identity() + nested_undefined(5000) + image())

    # Act / Assert
    assert rejection(data).code == "corrupt"


def test_undefined_length_value_without_delimiter_is_corrupt() -> None:
    # Arrange: an OB of undefined length that is never closed
    data = part10(identity() + el(0x00091010, "OB", b"\x01\x02" * 50, length=0xFFFFFFFF))

    # Act / Assert
    assert rejection(data).code == "corrupt"


def test_undefined_length_sequence_without_delimiter_is_corrupt() -> None:
    # Arrange
    sequence = (struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<L", 0xFFFFFFFF)
                + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
                + el(0x0040A160, "UT", padded("open")))
    data = part10(identity() + sequence)

    # Act / Assert
    assert rejection(data).code == "corrupt"


class RecordingFile(io.BytesIO):
    """Remembers the largest read it was asked for."""

    largest = 0

    def read(self, n: int | None = -1) -> bytes:
        self.largest = max(self.largest, -1 if n is None else n)
        return super().read(n)


@pytest.mark.parametrize("implicit", [False, True])
def test_huge_declared_value_length_is_corrupt_without_allocating_it(implicit: bool) -> None:
    # Arrange: a normal text element declaring 0xFFFFFFF0 bytes
    if implicit:
        body = b"".join([
            implicit_el(0x00080018, text("1.2.3.4.5")),
            implicit_el(0x00100020, b"ID", length=0xFFFFFFF0),
            implicit_el(0x0020000D, text("1.2.3")),
            implicit_el(0x0020000E, text("1.2.3.4")),
        ])
        data = part10(body, IMPLICIT_LE)
    else:
        data = part10(identity() + el(0x0040A160, "UT", b"text", length=0xFFFFFFF0) + image())
    f = RecordingFile(data)

    # Act
    with pytest.raises(HeaderRejected) as info:
        read_header(f, len(data), **LIMITS)

    # Assert
    assert info.value.code == "corrupt"
    assert f.largest <= len(data)


def test_huge_declared_sequence_length_is_corrupt() -> None:
    # Arrange
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 8) + el(0x0040A160, "UT", b"ab")
    data = part10(identity() + el(0x0040A730, "SQ", item, length=0xFFFFFFF0))

    # Act / Assert
    assert rejection(data).code == "corrupt"


def test_item_value_running_past_its_sequence_is_corrupt() -> None:
    # Arrange: a defined-length sequence whose item declares more than the sequence holds
    inner = el(0x0040A160, "UT", b"abcd", length=400)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
    data = part10(identity() + el(0x0040A730, "SQ", item) + image())

    # Act / Assert
    assert rejection(data).code == "corrupt"


def deflated_part10(dataset_bytes: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return part10(packer.compress(dataset_bytes) + packer.flush(), DEFLATED)


def test_generated_deflated_file_is_read() -> None:
    # Arrange
    data = deflated_part10(identity("DEFLATED^NAME") + image())

    # Act
    header = read_bytes(data)

    # Assert
    assert header.transfer_syntax_uid == DEFLATED
    assert header.fields["PatientName"] == "DEFLATED^NAME"
    assert header.is_image


def test_pydicom_written_deflated_file_matches_pydicom() -> None:
    # Arrange: re-encode a corpus CT as Deflated Explicit VR Little Endian with pydicom
    ds = pydicom.dcmread(corpus_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = DEFLATED
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()

    # Act
    header = read_bytes(data)

    # Assert
    expected = field_values_from_pydicom(pydicom.dcmread(io.BytesIO(data)))
    assert header.fields == expected


@pytest.mark.parametrize(("in_chunk", "out_chunk"), [(7, 5), (1, 4096), (4096, 1)])
def test_inflating_in_tiny_chunks_gives_the_same_header(monkeypatch, in_chunk: int,
                                                        out_chunk: int) -> None:
    # Arrange: chunk sizes that split every zlib block boundary differently
    import pacs.dicom.deflate as module

    data = deflated_part10(identity("CHUNKED^NAME") + image(rows=64, columns=64,
                                                            pixel_bytes=bytes(4096)))
    expected = read_bytes(data).fields
    monkeypatch.setattr(module, "_INFLATE_IN_CHUNK", in_chunk)
    monkeypatch.setattr(module, "_INFLATE_OUT_CHUNK", out_chunk)

    # Act
    header = read_bytes(data)

    # Assert
    assert header.fields == expected and header.fields["PatientName"] == "CHUNKED^NAME"


def test_truncated_deflate_stream_is_corrupt() -> None:
    # Arrange
    data = deflated_part10(identity() + image())

    # Act / Assert
    assert rejection(data[:-6]).code in {"corrupt", "truncated_pixel_data"}


def test_deflate_bomb_is_rejected() -> None:
    # Arrange: 16 MiB of zeros deflate to ~16 KiB
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = packer.compress(identity() + bytes(16 * MIB)) + packer.flush()
    data = part10(body, DEFLATED)

    # Act
    error = rejection(data, inflate_max_bytes=1 * MIB)

    # Assert
    assert error.code == "deflate_bomb"
    assert len(data) < 64 * 1024


BOMB_SCRIPT = textwrap.dedent("""
    import io, sys, zlib
    sys.path[:0] = {paths!r}
    from tests.unit.test_dicom_header import identity, part10
    from pacs.dicom.header import HeaderRejected, read_header

    def peak_mib():
        # VmHWM belongs to this process image; ru_maxrss would carry over the peak of
        # the (forked) pytest parent.
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024

    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks = [packer.compress(identity())]
    zeros = bytes(1 << 20)
    for _ in range(1024):  # 1 GiB inflated
        chunks.append(packer.compress(zeros))
    chunks.append(packer.flush())
    data = part10(b"".join(chunks), "1.2.840.10008.1.2.1.99")
    del chunks, zeros
    before = peak_mib()
    try:
        read_header(io.BytesIO(data), len(data), max_header_bytes=64 << 20,
                    inflate_max_bytes=64 << 20)
        code = "accepted"
    except HeaderRejected as err:
        code = err.code
    print(code, before, peak_mib(), len(data))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_deflate_bomb_peak_memory_is_bounded() -> None:
    # Arrange: a 1 GiB bomb, a 64 MiB inflate cap and a 64 MiB header cap
    root = Path(__file__).resolve().parents[2]
    script = BOMB_SCRIPT.format(paths=[str(root), str(root / "functions")])

    # Act
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    code, before_mib, peak_mib, size = run.stdout.split()

    # Assert
    assert code == "deflate_bomb"
    assert int(peak_mib) < 100, f"peak RSS {peak_mib} MiB (before parsing {before_mib} MiB)"
    assert int(size) < 2 * MIB


@pytest.mark.parametrize("cut", [0, 1, 100, 131, 132, 140, 300, 401, 405, 415, -20, -3])
def test_file_truncated_in_its_header_is_rejected(cut: int) -> None:
    # Arrange
    data = part10(identity() + image())[:cut]

    # Act
    error = rejection(data)

    # Assert
    assert error.code in {"not_dicom", "corrupt", "missing_uid", "truncated_pixel_data"}


def test_empty_file_is_not_dicom() -> None:
    assert rejection(b"").code == "not_dicom"


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("name", ["693_UNCI.dcm", "emri_small_RLE.dcm",
                                  "MR_small_jp2klossless.dcm", "JPEG-LL.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_corpus_file_truncated_in_pixel_data_is_rejected(name: str, keep: float) -> None:
    # Arrange: cut inside the pixel data value (files may carry bytes after it)
    header = read_path(corpus_file(name))
    data = corpus_file(name).read_bytes()
    offset, length = header.pixel_data_offset, header.pixel_data_length
    present = len(data) - offset if length == 0xFFFFFFFF else length
    cut = data[: offset + int(present * keep) + 1]

    # Act
    error = rejection(cut)

    # Assert
    assert error.code == "truncated_pixel_data"


def test_native_pixel_data_shorter_than_image_is_truncated() -> None:
    # Arrange: 4x4 8-bit image with only 10 bytes of pixels (declared honestly)
    data = part10(identity() + image(pixel_bytes=bytes(10)))

    # Act / Assert
    assert rejection(data).code == "truncated_pixel_data"


def test_pixel_length_beyond_file_is_truncated() -> None:
    # Arrange
    data = part10(identity() + image(declared=4096))

    # Act / Assert
    assert rejection(data).code == "truncated_pixel_data"


def test_header_over_the_limit_is_too_large() -> None:
    # Arrange
    data = part10(identity() + el(0x0040A160, "UT", bytes(20_000)) + image())

    # Act / Assert
    assert rejection(data, max_header_bytes=8_000).code == "too_large"
    assert read_bytes(data, max_header_bytes=30_000).is_image


def test_element_count_is_capped() -> None:
    # Arrange: 50 000 empty private elements
    flood = b"".join(struct.pack("<HH2sH", 0x0009, i % 0xFFFF + 1, b"LO", 0)
                     for i in range(50_000))
    data = part10(identity() + flood + image())

    # Act
    error = rejection(data, max_elements=10_000)

    # Assert
    assert error.code == "too_large"
    assert read_bytes(data, max_elements=100_000).is_image


def test_element_count_is_capped_inside_defined_length_sequences() -> None:
    # Arrange: a defined-length sequence item holding 30 000 elements
    inner = b"".join(struct.pack("<HH2sH", 0x0009, i + 1, b"LO", 0) for i in range(30_000))
    item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
    data = part10(identity() + el(0x0040A730, "SQ", item) + image())

    # Act / Assert
    assert rejection(data, max_elements=10_000).code == "too_large"


@pytest.mark.parametrize(("uid", "code"), [("", "missing_uid"), ("1." * 40, "invalid_uid"),
                                           ("1.2/../x", "invalid_uid")])
def test_bad_study_uid_is_rejected(uid: str, code: str) -> None:
    # Arrange
    body = identity().replace(el(0x0020000D, "UI", text("1.2.3")),
                              el(0x0020000D, "UI", text(uid)))
    data = part10(body + image())

    # Act / Assert
    assert rejection(data).code == code


def test_rejection_message_never_quotes_the_file() -> None:
    # Arrange: corrupt file whose values would show up in pydicom's exception texts
    data = part10(identity("SECRET^PATIENT") + el(0x0010A160, "UT", b"SECRET", length=9_999))

    # Act
    error = rejection(data)

    # Assert
    assert "SECRET" not in str(error) and "SECRET" not in repr(error.args)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_no_dicm_prefix_is_not_dicom() -> None:
    # Arrange
    data = small_valid()
    data = data[:128] + b"DICX" + data[132:]

    # Act / Assert
    assert rejection(data).code == "not_dicom"


def test_accepts_bytes() -> None:
    # Arrange
    data = small_valid()

    # Act
    header = read_header(data, len(data), **LIMITS)

    # Assert
    assert header.sop_instance_uid == "1.2.3.4.5"


# --------------------------------------------------------------------------- preamble


def test_zero_preamble_clears_an_executable_preamble() -> None:
    # Arrange
    data = small_valid()
    assert data[:4] == b"\x7fELF"

    # Act
    cleaned = zero_preamble(data[:4096])

    # Assert
    assert cleaned[:128] == bytes(128)
    assert cleaned[128:] == data[128:4096]


def test_zero_preamble_leaves_other_bytes_alone() -> None:
    # Arrange
    other = b"MZ" + bytes(200)

    # Act / Assert
    assert zero_preamble(other) == other
    assert zero_preamble(b"short") == b"short"
