"""The DICOMweb bench's own parts (bench/dicomweb_bench.py): what it asks for is read from
the workload's real files, a frame is the first part of a real multipart answer (framed by
our writer, and with a quoted boundary as Orthanc quotes it), and a wrong frame fails."""

from __future__ import annotations

import hashlib
import io
import json

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


class _Origin:
    """A tiny real DICOMweb origin over HTTP: answers the bench's three searches and frames
    of ``frames`` (SOP → bytes), and records the order of the requests it gets."""

    def __init__(self, name: str, t: dicomweb_bench.Target, frames: dict[str, bytes],
                 log: list[str]):
        import http.server
        import threading

        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                log.append(name)
                if "/frames/" in path:
                    sop = path.split("/instances/")[1].split("/")[0]
                    writer = MultipartWriter("application/octet-stream")
                    body = b"".join(writer.stream([Part("application/octet-stream",
                                                        [origin.frames[sop]])]))
                    ctype = writer.content_type
                else:
                    count = len(t.sops) if path.endswith("/instances") else 1
                    body, ctype = json.dumps([{}] * count).encode(), "application/dicom+json"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.frames = frames
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.side = (f"http://127.0.0.1:{self.server.server_address[1]}", {})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _world():
    pixels = {f"1.2.{i}": bytes([i]) * 1000 for i in range(6)}
    t = dicomweb_bench.Target("1.2.3", "1.2.4", "A^B", tuple(pixels),
                              {s: hashlib.sha256(p).hexdigest() for s, p in pixels.items()})
    return t, pixels


def test_both_sides_are_asked_interleaved_and_every_answer_checked():
    log: list[str] = []
    t, pixels = _world()
    a, b = _Origin("a", t, pixels, log), _Origin("b", t, pixels, log)
    try:
        sides = {"a": a.side, "b": b.side}
        q = dicomweb_bench.qido(sides, t, samples=4)
        assert set(q) == {"studies_by_patient_name", "series_of_study", "instances_of_series"}
        assert all(q[s][n]["samples"] == 4 for s in q for n in sides)
        assert log[:8] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # who goes first alternates
        log.clear()
        f = dicomweb_bench.frames(sides, t, clients=2, blocks=2)
        assert f["a"]["frames"] == f["b"]["frames"] == 6 and f["a"]["frames_per_s"] > 0
        assert log == ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3  # blocks alternate
        b.frames = {**pixels, t.sops[4]: b"not the pixels"}
        with pytest.raises(RuntimeError, match="not the original"):
            dicomweb_bench.frames(sides, t, clients=2, blocks=2)
    finally:
        a.close()
        b.close()
