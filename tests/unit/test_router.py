"""The router's delivery: retries with backoff until a 2xx, CloudEvent shapes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from localcloud import cloudevents, config
from localcloud.router import Router


def _server(statuses: list[int]):
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"headers": dict(self.headers), "body": body})
            self.send_response(statuses[min(len(seen) - 1, len(statuses) - 1)])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def _router(port: int, **kwargs) -> Router:
    cfg = {"project": "demo-unit", "buckets": {
        "uploads": "u", "instances": "i", "derived": "d"},
           "function_ports": {f["name"]: port for f in config.function_table()}}
    return Router(cfg, **kwargs)


def test_post_retries_failures_until_success():
    server, seen = _server([503, 500, 204])
    router = _router(server.server_port, base_backoff=0.01)
    headers, body = cloudevents.pubsub_event("demo-unit", "t", "s", "42", b"{}", {}, "2026-01-01T00:00:00Z")
    ok = router.post("fn", f"http://127.0.0.1:{server.server_port}/", headers, body)
    server.shutdown()
    assert ok is True
    assert len(seen) == 3
    assert router.stats["retried"] == 2 and router.stats["delivered"] == 1


def test_post_gives_up_after_max_attempts_so_pubsub_redelivers():
    server, seen = _server([500])
    router = _router(server.server_port, base_backoff=0.001, max_attempts=3)
    headers, body = cloudevents.pubsub_event("demo-unit", "t", "s", "1", b"", {}, "2026-01-01T00:00:00Z")
    assert router.post("fn", f"http://127.0.0.1:{server.server_port}/", headers, body) is False
    server.shutdown()
    assert len(seen) == 3


def test_storage_notification_becomes_binary_mode_cloudevent():
    resource = {"bucket": "b1", "name": "uid/up1", "generation": "17", "size": "5"}
    headers, body, bucket = cloudevents.storage_event(
        "99", {"eventType": "OBJECT_FINALIZE", "bucketId": "b1", "objectId": "uid/up1",
               "eventTime": "2026-11-25T10:00:00Z"}, json.dumps(resource).encode(), None)
    assert bucket == "b1"
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == "//storage.googleapis.com/projects/_/buckets/b1"
    assert headers["ce-subject"] == "objects/uid/up1"
    assert headers["ce-id"] == "99" and headers["ce-specversion"] == "1.0"
    assert json.loads(body) == resource
    assert cloudevents.storage_event("1", {"eventType": "OTHER"}, b"{}", None) is None


def _keep_alive_server():
    """An HTTP/1.1 server that counts the TCP connections it accepts."""
    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            connections.append(1)

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, connections


def test_deliveries_from_one_thread_reuse_one_connection():
    # Arrange
    server, connections = _keep_alive_server()
    router = _router(server.server_port)
    url = f"http://127.0.0.1:{server.server_port}/"
    headers, body = cloudevents.pubsub_event("demo-unit", "t", "s", "7", b"{}", {}, "2026-01-01T00:00:00Z")
    # Act
    delivered = [router.post("fn", url, headers, body) for _ in range(5)]
    # Assert
    server.shutdown()
    assert delivered == [True] * 5
    assert len(connections) == 1


def test_a_kept_connection_the_server_closed_is_replaced_without_a_retry():
    # Arrange: the first connection is closed by the server between two deliveries
    server, connections = _keep_alive_server()
    router = _router(server.server_port)
    url = f"http://127.0.0.1:{server.server_port}/"
    headers, body = cloudevents.pubsub_event("demo-unit", "t", "s", "8", b"{}", {}, "2026-01-01T00:00:00Z")
    assert router.post("fn", url, headers, body) is True
    for conn in router.connections._local.open.values():
        conn.sock.shutdown(2)  # as an idle timeout on the server's side would
    # Act
    ok = router.post("fn", url, headers, body)
    # Assert
    server.shutdown()
    assert ok is True
    assert router.stats["retried"] == 0 and router.stats["delivered"] == 2
    assert len(connections) == 2
