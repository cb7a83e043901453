"""Deflated Explicit VR Little Endian files (``pacs.dicom.deflate``): read like pydicom
reads them, the same header whatever the inflate chunk sizes, a truncated stream corrupt,
and a deflate bomb rejected in bounded memory (a 1 GiB bomb in a child process).
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pydicom
import pytest
from pacs.dicom.fields import field_values_from_pydicom

from tests.dicom_builders import DEFLATED, MIB, identity, image, part10, read_bytes, rejection
from tests.dicom_corpus import corpus_file


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
    from tests.dicom_builders import identity, part10
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
