"""HTTP JSON bodies are capped (``pacs.http.handle``: 64 KiB, 413 ``body_too_large`` with a
reason) before the handler runs, for declared and for chunked bodies; a handler that takes
large bodies (multipart STOW) opts out with ``max_body_bytes=None``.

Driven through a real Flask app (the framework functions-framework serves) with Werkzeug's
test client; tests/integration/test_http_limits.py sends the same to the deployed-shape
functions under gunicorn."""

from __future__ import annotations

import io
import json

import flask
import pytest
from pacs import http

LIMIT = 64 * 1024


@pytest.fixture
def client():
    app = flask.Flask(__name__)

    @app.route("/json", methods=["POST", "GET"])
    def json_route():
        return http.handle("json_route", lambda: {"keys": sorted(flask.request.get_json())})

    @app.route("/stow", methods=["POST"])
    def stow_route():
        return http.handle("stow_route", lambda: {"bytes": len(flask.request.get_data())},
                           max_body_bytes=None)

    return app.test_client()


def _json_of_size(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    body = json.dumps({"a": ""}).encode()
    return json.dumps({"a": "x" * (size - len(body))}).encode()


def test_the_limit_is_64_kib():
    assert http.JSON_BODY_MAX_BYTES == LIMIT


def test_a_body_at_the_limit_is_handled(client):
    body = _json_of_size(LIMIT)
    assert len(body) == LIMIT
    resp = client.post("/json", data=body, content_type="application/json")
    assert resp.status_code == 200 and resp.get_json() == {"keys": ["a"]}


def test_a_declared_body_over_the_limit_gets_413_with_a_reason(client):
    resp = client.post("/json", data=_json_of_size(LIMIT + 1), content_type="application/json")
    assert resp.status_code == 413
    body = resp.get_json()
    assert body["error"] == "body_too_large"
    assert str(LIMIT) in body["message"]
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("size", "status"), [(1000, 200), (LIMIT + 1, 413), (10 * LIMIT, 413)])
def test_a_chunked_body_is_read_only_up_to_the_limit(client, size, status):
    stream = io.BytesIO(_json_of_size(size))
    resp = client.post("/json", input_stream=stream, content_type="application/json",
                       environ_overrides={"wsgi.input_terminated": True})
    assert resp.status_code == status, resp.get_data(as_text=True)
    if status == 413:
        assert resp.get_json()["error"] == "body_too_large"
        assert stream.tell() <= LIMIT + 1  # the rest of the body was never read


def test_multipart_stow_opts_out(client):
    payload = b"--b\r\n" + b"\x00" * (1024 * 1024) + b"\r\n--b--\r\n"
    resp = client.post("/stow", data=payload,
                       content_type='multipart/related; type="application/dicom"; boundary=b')
    assert resp.status_code == 200 and resp.get_json() == {"bytes": len(payload)}
