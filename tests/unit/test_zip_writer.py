"""The streaming ZIP writer (pacs.zip.writer): what it writes opens with zipfile and with
the ``unzip`` command, member by member as the bytes come, and sizes are held to."""

from __future__ import annotations

import io
import subprocess
import zipfile
from datetime import datetime

import pytest
from pacs.zip import writer

WHEN = datetime(2026, 12, 6, 11, 30, 15)


def members():
    yield writer.Member("1.2.3/1.2.3.4.dcm", 5, iter([b"ab", b"cde"]))
    yield writer.Member("1.2.3/empty.dcm", 0, iter([]))
    yield writer.Member("1.2.4/big.dcm", 3 * 1024 * 1024 + 7,
                        iter([b"\x01" * 1024 * 1024] * 3 + [b"1234567"]))


def test_archive_opens_everywhere(tmp_path):
    data = b"".join(writer.stream_zip(members(), WHEN))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert [(i.filename, i.file_size, i.compress_type, i.date_time) for i in zf.infolist()] \
            == [("1.2.3/1.2.3.4.dcm", 5, zipfile.ZIP_STORED, (2026, 12, 6, 11, 30, 14)),
                ("1.2.3/empty.dcm", 0, zipfile.ZIP_STORED, (2026, 12, 6, 11, 30, 14)),
                ("1.2.4/big.dcm", 3 * 1024 * 1024 + 7, zipfile.ZIP_STORED,
                 (2026, 12, 6, 11, 30, 14))]
        assert zf.read("1.2.3/1.2.3.4.dcm") == b"abcde"
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True,
                            check=False)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout


def test_streams_member_by_member():
    taken = []

    def lazy():
        for name in ("a", "b"):
            taken.append(name)
            yield writer.Member(name, 1, [b"x"])

    stream = writer.stream_zip(lazy(), WHEN)
    first = next(stream)
    assert first.startswith(b"PK\x03\x04") and taken == ["a"]
    rest = b"".join(stream)
    assert taken == ["a", "b"] and b"PK\x05\x06" in rest  # the end record comes last


@pytest.mark.parametrize("chunks", [[b"abcd"], [b"ab"]])
def test_a_member_of_another_size_cuts_the_stream(chunks):
    with pytest.raises(ValueError):
        b"".join(writer.stream_zip([writer.Member("x", 3, chunks)], WHEN))
