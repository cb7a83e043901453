"""The uploader's files (``pacs_cli.uploader``): content types by magic bytes, folders
expanded in order without hidden files, and the chunk size a multiple of 256 KiB.
"""

from __future__ import annotations

import pytest
from pacs_cli.uploader import (
    DICOM,
    OCTET_STREAM,
    ZIP,
    content_type_of,
    iter_upload_files,
    upload_file,
)

from tests.uploader_helpers import KIB256, dicom_bytes, write

pytestmark = pytest.mark.usefixtures("no_sleep")


def test_content_type_by_magic_bytes(tmp_path):
    assert content_type_of(write(tmp_path / "a.bin", dicom_bytes(400))) == DICOM
    assert content_type_of(write(tmp_path / "b.dat", b"PK\x03\x04rest")) == ZIP
    assert content_type_of(write(tmp_path / "c.dcm", b"\0" * 200)) == OCTET_STREAM
    assert content_type_of(write(tmp_path / "d", b"DICM")) == OCTET_STREAM
    assert content_type_of(write(tmp_path / "e", b"")) == OCTET_STREAM


def test_iter_upload_files_expands_folders_sorted_skipping_hidden(tmp_path):
    root = tmp_path / "study"
    for rel in ["b/2.dcm", "b/10.dcm", "a.dcm", "c/d/e.dcm", ".hidden.dcm", ".git/x.dcm",
                "b/.DS_Store", "series.zip"]:
        write(root / rel, b"x")
    lone = write(tmp_path / "lone.zip", b"PK\x03\x04")
    files = iter_upload_files([root, lone, root / "a.dcm"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "study/a.dcm", "study/b/10.dcm", "study/b/2.dcm", "study/c/d/e.dcm",
        "study/series.zip", "lone.zip",
    ]
    # an explicitly named hidden file is kept
    assert iter_upload_files([root / ".hidden.dcm"]) == [root / ".hidden.dcm"]
    with pytest.raises(FileNotFoundError):
        iter_upload_files([tmp_path / "missing"])


def test_chunk_size_must_be_a_multiple_of_256_kib(tmp_path, gcs):
    path = write(tmp_path / "x.dcm", dicom_bytes(1000))
    for bad in (0, 1000, KIB256 + 1):
        with pytest.raises(ValueError):
            upload_file(path, gcs.start_upload(), chunk_size=bad)
