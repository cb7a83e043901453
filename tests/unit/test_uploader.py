"""The uploader (``pacs_cli.uploader``) and the Cloud Storage resumable upload protocol,
against ``FakeGCS`` (``tests/uploader_helpers.py``): chunked uploads byte for byte, resuming
after a dropped connection from what the server kept, retries with backoff, sessions stored
and resumed by a second run (or replaced when gone or when the file changed), and uploading
a whole folder with a report per file.

Files and content types: ``test_uploader_files.py``; against the real emulator
(fake-gcs-server): ``test_uploader_emulator.py``.
"""

from __future__ import annotations

import io
import json
import os
import stat
import time
from pathlib import Path

import pytest
import requests
from pacs_cli.upload_batch import upload_all
from pacs_cli.upload_sessions import SessionStore
from pacs_cli.upload_start import make_start_upload
from pacs_cli.uploader import (
    DICOM,
    OCTET_STREAM,
    ZIP,
    UploadError,
    upload_file,
)

from tests.uploader_helpers import KIB256, dicom_bytes, write

pytestmark = pytest.mark.usefixtures("no_sleep")


def test_chunked_upload_is_byte_identical(tmp_path, gcs):
    data = dicom_bytes(5 * KIB256 * 2 + 12345)
    path = write(tmp_path / "img.dcm", data)
    seen: list[int] = []
    upload_id = upload_file(path, gcs.start_upload("secret"), chunk_size=2 * KIB256,
                            progress=seen.append, http=requests.Session())
    assert gcs.data(upload_id) == data
    assert sum(seen) == len(data) and all(n > 0 for n in seen)
    assert gcs.creates == [{"filename": "img.dcm", "size": len(data), "content_type": DICOM}]
    assert gcs.auth_headers == ["Bearer secret"]
    ranges = [r for _, r in gcs.puts]
    assert len(ranges) == 6 and ranges[0] == f"bytes 0-{2 * KIB256 - 1}/{len(data)}"
    assert not any(r.startswith("bytes */") for r in ranges)  # no status query needed
    assert set(gcs.content_types) == {DICOM}


def test_resumes_after_a_dropped_connection(tmp_path, gcs, no_sleep):
    data = dicom_bytes(8 * KIB256 + 777)
    path = write(tmp_path / "img.dcm", data)
    gcs.drop_at = 4 * KIB256  # the third 2-slot chunk: connection closed, 256 KiB kept
    seen: list[int] = []
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=2 * KIB256,
                            progress=seen.append)
    assert gcs.data(upload_id) == data
    assert sum(seen) == len(data)
    ranges = [r for _, r in gcs.puts]
    total = len(data)
    status_at = ranges.index(f"bytes */{total}")
    assert ranges[status_at - 1] == f"bytes {4 * KIB256}-{6 * KIB256 - 1}/{total}"
    # resumed from what the server kept (5 slots), not from the client's own offset
    assert ranges[status_at + 1] == f"bytes {5 * KIB256}-{7 * KIB256 - 1}/{total}"
    assert len(no_sleep) == 1


def test_follows_the_range_when_the_server_keeps_less(tmp_path, gcs):
    data = dicom_bytes(6 * KIB256 + 5)
    path = write(tmp_path / "img.dcm", data)
    gcs.keep_less_at = 2 * KIB256
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=2 * KIB256)
    assert gcs.data(upload_id) == data
    ranges = [r for _, r in gcs.puts]
    assert f"bytes {3 * KIB256}-{5 * KIB256 - 1}/{len(data)}" in ranges


def test_retries_5xx_with_exponential_backoff(tmp_path, gcs, no_sleep):
    data = dicom_bytes(3 * KIB256)
    path = write(tmp_path / "img.dcm", data)
    gcs.fail_next = 3
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=KIB256, backoff=1.0)
    assert gcs.data(upload_id) == data
    assert len(no_sleep) == 3
    assert 1.0 <= no_sleep[0] <= 1.25 and 2.0 <= no_sleep[1] <= 2.5 and 4.0 <= no_sleep[2] <= 5.0


def test_gives_up_after_the_retries_and_keeps_the_session(tmp_path, gcs):
    path = write(tmp_path / "img.dcm", dicom_bytes(3 * KIB256))
    store = tmp_path / "cfg" / "uploads.json"
    gcs.fail_next = 100
    with pytest.raises(UploadError) as err:
        upload_file(path, gcs.start_upload(), chunk_size=KIB256, retries=2, session_store=store)
    assert err.value.code == "network"
    assert str(path.resolve()) in json.loads(store.read_text())["uploads"]


def test_a_second_run_resumes_the_stored_session(tmp_path, gcs):
    data = dicom_bytes(8 * KIB256 + 99)
    path = write(tmp_path / "img.dcm", data)
    store = tmp_path / "cfg" / "uploads.json"
    gcs.drop_at = 4 * KIB256
    with pytest.raises(UploadError):  # first run: no retries, the dropped connection ends it
        upload_file(path, gcs.start_upload(), chunk_size=2 * KIB256, retries=0,
                    session_store=store)
    entry = json.loads(store.read_text())["uploads"][str(path.resolve())]
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert entry["size"] == len(data) and entry["upload_id"].startswith("up-")

    def no_new_session(request):
        raise AssertionError("a stored session must be resumed, not replaced")

    gcs.puts.clear()
    seen: list[int] = []
    upload_id = upload_file(path, no_new_session, chunk_size=2 * KIB256, session_store=store,
                            progress=seen.append)
    assert upload_id == entry["upload_id"]
    assert gcs.data(upload_id) == data
    assert sum(seen) == len(data)
    ranges = [r for _, r in gcs.puts]
    assert ranges[0] == f"bytes */{len(data)}"
    assert ranges[1].startswith(f"bytes {5 * KIB256}-")
    assert json.loads(store.read_text())["uploads"] == {}


def test_a_stored_session_is_ignored_when_the_file_changed(tmp_path, gcs):
    path = write(tmp_path / "img.dcm", dicom_bytes(3 * KIB256))
    store = tmp_path / "uploads.json"
    gcs.fail_next = 100
    with pytest.raises(UploadError):
        upload_file(path, gcs.start_upload(), chunk_size=KIB256, retries=0, session_store=store)
    gcs.fail_next = 0
    data = dicom_bytes(3 * KIB256)
    path.write_bytes(data)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=KIB256, session_store=store)
    assert len(gcs.creates) == 2
    assert gcs.data(upload_id) == data


def test_a_gone_stored_session_is_replaced(tmp_path, gcs):
    data = dicom_bytes(2 * KIB256 + 1)
    path = write(tmp_path / "img.dcm", data)
    store = tmp_path / "uploads.json"
    gcs.fail_next = 100
    with pytest.raises(UploadError):
        upload_file(path, gcs.start_upload(), chunk_size=KIB256, retries=0, session_store=store)
    gcs.fail_next = 0
    gcs.sessions.clear()  # expired
    upload_id = upload_file(path, gcs.start_upload(), chunk_size=KIB256, session_store=store)
    assert len(gcs.creates) == 2 and gcs.data(upload_id) == data


def test_a_stored_session_that_already_completed_returns_its_id(tmp_path, gcs):
    data = dicom_bytes(KIB256)
    path = write(tmp_path / "img.dcm", data)
    store = tmp_path / "uploads.json"
    sid = gcs.new_session(len(data))
    gcs.sessions[sid].update(data=bytearray(data), done=True)
    st = path.stat()
    SessionStore(store).put(str(path.resolve()), {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "content_type": DICOM,
        "upload_id": "up-" + sid, "session_url": gcs.url(sid), "created_at": time.time()})
    seen: list[int] = []
    assert upload_file(path, gcs.start_upload(), session_store=store,
                       progress=seen.append) == "up-" + sid
    assert gcs.creates == [] and sum(seen) == len(data)


def test_empty_file(tmp_path, gcs):
    path = write(tmp_path / "empty", b"")
    upload_id = upload_file(path, gcs.start_upload())
    assert gcs.data(upload_id) == b""
    assert [r for _, r in gcs.puts] == ["bytes */0"]


def test_make_start_upload_errors_and_retries(tmp_path, gcs):
    tokens = iter(["t1", "t2", "t3"])
    start = make_start_upload(f"{gcs.base}/create", lambda: next(tokens), backoff=0)
    gcs.create_failures = [503]
    answer = start({"filename": "a.dcm", "size": 1, "content_type": DICOM})
    assert answer["session_url"].startswith(gcs.base) and answer["upload_id"].startswith("up-")
    assert gcs.auth_headers == ["Bearer t1", "Bearer t2"]  # a fresh token for each call
    with pytest.raises(UploadError) as err:
        start({"filename": "refused.txt", "size": 1, "content_type": OCTET_STREAM})
    assert err.value.code == "unsupported_file" and "not a DICOM file" in str(err.value)


# --- a whole folder -------------------------------------------------------------------------


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_upload_all_reports_each_file_and_keeps_stdout_clean(tmp_path, gcs, capsys):
    good = write(tmp_path / "in" / "a.dcm", dicom_bytes(KIB256 + 3))
    write(tmp_path / "in" / "refused.txt", b"hello")
    zipped = write(tmp_path / "in" / "z.zip", b"PK\x03\x04" + os.urandom(1000))
    results = upload_all([tmp_path / "in"], gcs.start_upload(), chunk_size=KIB256)
    assert [Path(r["path"]).name for r in results] == ["a.dcm", "refused.txt", "z.zip"]
    assert results[0]["content_type"] == DICOM
    assert gcs.data(results[0]["upload_id"]) == good.read_bytes()
    assert results[1]["error"] == "unsupported_file" and "upload_id" not in results[1]
    assert results[2]["content_type"] == ZIP
    assert gcs.data(results[2]["upload_id"]) == zipped.read_bytes()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # not a TTY: no progress display

    tty = _TTY()
    upload_all([good], gcs.start_upload(), stream=tty)
    assert "1 file" in tty.getvalue() and "B" in tty.getvalue()
    quiet = _TTY()
    upload_all([good], gcs.start_upload(), stream=quiet, show_progress=False)
    assert quiet.getvalue() == ""


def test_upload_all_stops_on_error_when_asked(tmp_path, gcs):
    write(tmp_path / "in" / "refused.txt", b"x")
    write(tmp_path / "in" / "z.dcm", dicom_bytes(300))
    results = upload_all([tmp_path / "in"], gcs.start_upload(), keep_going=False)
    assert len(results) == 1 and results[0]["error"] == "unsupported_file"
