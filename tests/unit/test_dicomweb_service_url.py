"""The base URL of the URLs DICOMweb answers hold (``pacs.dicomweb.service_url``): the
caller's own origin through Hosting and directly, with the port dicomweb-client leaves out
of its Host header on a loopback origin, and never the process's port when deployed."""

from __future__ import annotations

import pytest
from pacs.dicomweb.service_url import service_base


@pytest.mark.parametrize(("headers", "scheme", "host", "port", "expected"), [
    # dicomweb-client straight at a local function: Host without the port.
    ({}, "http", "127.0.0.1", "8111", "http://127.0.0.1:8111/dicomweb"),
    ({}, "http", "localhost", "8111", "http://localhost:8111/dicomweb"),
    ({}, "http", "[::1]", "8111", "http://[::1]:8111/dicomweb"),
    # A client that sends the port (requests, browsers).
    ({}, "http", "127.0.0.1:8111", "8111", "http://127.0.0.1:8111/dicomweb"),
    # Deployed, directly: the public host on the default port; 8080 is the container's.
    ({"X-Forwarded-Proto": "https"}, "http", "europe-west1-p.cloudfunctions.net", "8080",
     "https://europe-west1-p.cloudfunctions.net/dicomweb"),
    # Through Hosting (and the local stand-in, which adds its port).
    ({"X-Forwarded-Host": "pacs.example, proxy", "X-Forwarded-Proto": "https"}, "http",
     "europe-west1-p.cloudfunctions.net", "8080", "https://pacs.example/dicomweb"),
    ({"X-Forwarded-Host": "127.0.0.1:5000"}, "http", "127.0.0.1:8111", "8111",
     "http://127.0.0.1:5000/dicomweb"),
    # A loopback origin on the scheme's default port needs none.
    ({}, "http", "127.0.0.1", "80", "http://127.0.0.1/dicomweb"),
])
def test_service_base(headers, scheme, host, port, expected):
    assert service_base(headers, scheme, host, port, "/dicomweb") == expected


def test_the_functions_own_url_ignores_the_proxy():
    headers = {"X-Forwarded-Host": "pacs.example", "X-Forwarded-Proto": "https"}
    assert service_base(headers, "http", "127.0.0.1", "8111", forwarded=False) == (
        "http://127.0.0.1:8111")
