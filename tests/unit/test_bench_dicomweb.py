"""The DICOMweb bench's own parts (bench/dicomweb_bench.py): what it asks for is read from
the workload's real files, a frame is the first part of a real multipart answer (framed by
our writer, and with a quoted boundary as Orthanc quotes it), and a wrong frame fails."""

from __future__ import annotations

import hashlib
import io

import pydicom
import pytest
import requests
from pacs.dicomweb.multipart import MultipartWriter, Part
from pydicom.data import get_testdata_file

from bench import dicomweb_bench, workloads


def _response(body: bytes, content_type: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code = 200
    resp._content = body
    resp.headers["Content-Type"] = content_type
    return resp


def test_the_target_is_read_from_the_workload_files(tmp_path):
    w = workloads.build("T", get_testdata_file("CT_small.dcm"), 3, 1, tmp_path)
    t = dicomweb_bench.target(w.path)
    members = [pydicom.dcmread(io.BytesIO(b)) for b in workloads.members(w)]
    assert t.sops == tuple(ds.SOPInstanceUID for ds in members) and len(set(t.sops)) == 3
    assert {t.study} == {ds.StudyInstanceUID for ds in members}
    assert {t.series} == {ds.SeriesInstanceUID for ds in members}
    assert t.patient_name == str(members[0].PatientName)
    assert t.frame_sha256[t.sops[0]] == hashlib.sha256(members[0].PixelData).hexdigest()


@pytest.mark.parametrize("quoted", [False, True])
def test_the_frame_is_the_first_part(quoted):
    frame = b"\r\n--not-it\r\n" + bytes(range(256)) * 8
    writer = MultipartWriter("application/octet-stream")
    body = b"".join(writer.stream([
        Part("application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1", [frame]),
        Part("application/octet-stream", [b"second"])]))
    ctype = writer.content_type
    if quoted:
        ctype = ctype.replace(f"boundary={writer.boundary}", f'boundary="{writer.boundary}"')
    assert dicomweb_bench._first_part(_response(body, ctype)) == frame


def test_an_answer_that_is_not_multipart_is_an_error():
    with pytest.raises(RuntimeError, match="not multipart"):
        dicomweb_bench._first_part(_response(b"{}", "application/json"))
