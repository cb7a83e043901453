"""The web API key the sign-in email change needs, read from what Firebase Hosting publishes
(``/__/firebase/init.json``), served here by a real local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pacs.privacy.sign_in_email import published_api_key


@pytest.fixture
def hosting():
    bodies: dict[str, tuple[int, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            status, body = bodies.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()


def test_the_published_key_is_read_from_init_json(hosting):
    origin, bodies = hosting
    bodies["/__/firebase/init.json"] = (200, json.dumps(
        {"projectId": "p", "apiKey": "AIza-public-key"}).encode())
    assert published_api_key(origin + "/") == "AIza-public-key"


@pytest.mark.parametrize("status, body", [(404, b"nope"), (200, b"<html>"), (200, b"[1]"),
                                          (200, b'{"projectId": "p"}')])
def test_no_readable_key_is_an_empty_answer(hosting, status, body):
    origin, bodies = hosting
    bodies["/__/firebase/init.json"] = (status, body)
    assert published_api_key(origin) == ""


def test_an_unreachable_site_is_an_empty_answer():
    assert published_api_key("http://127.0.0.1:9") == ""
