"""Every HTTP function refuses a JSON body over its limit (64 KiB, ``pacs.http``, unless the
route sets its own) with 413 ``body_too_large`` before it does anything else (no token
needed to be refused), whether the size is declared or the body is chunked: the real
functions under gunicorn, as deployed."""

from __future__ import annotations

import json

import pytest
import requests
from pacs import http
from pacs.ingest import uploads

from localcloud import config
from tests.localcloud_fixture import LocalCloud

pytestmark = pytest.mark.localcloud

LIMIT = 64 * 1024
HTTP_FUNCTIONS = {"create-upload": "/", "studies": "/", "sign-link": "/manifest",
                  "privacy-requests": "/profile", "dicomweb": "/studies"}
# create_upload takes batches of files and sets a larger limit of its own, when it has one.
LIMITS = {"create-upload": getattr(uploads, "MAX_BODY_BYTES", LIMIT)}


def test_the_default_limit_is_64_kib():
    assert http.JSON_BODY_MAX_BYTES == LIMIT


def test_the_table_of_http_functions_is_complete():
    assert set(HTTP_FUNCTIONS) == {f["name"] for f in config.function_table()
                                   if f["trigger"]["type"] == "http"}


def _body(size: int) -> bytes:
    body = json.dumps({"filename": "x.dcm", "padding": ""}).encode()
    return json.dumps({"filename": "x.dcm", "padding": "x" * (size - len(body))}).encode()


@pytest.mark.parametrize("name", sorted(HTTP_FUNCTIONS))
def test_a_large_json_body_gets_413_with_a_reason(cloud: LocalCloud, name):
    url = cloud.urls[name] + HTTP_FUNCTIONS[name]
    limit = LIMITS.get(name, LIMIT)
    method = "GET" if name in ("studies", "dicomweb") else "POST"
    headers = {"Content-Type": "application/json"}
    resp = requests.request(method, url, data=_body(limit + 1), headers=headers, timeout=60)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "body_too_large"
    assert str(limit) in resp.json()["message"]
    # Chunked (no Content-Length): read only up to the limit, then refused.
    big = _body(4 * limit)
    chunks = (big[i:i + 65536] for i in range(0, len(big), 65536))
    resp = requests.request(method, url, data=chunks, headers=headers, timeout=60)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "body_too_large"
    # At the limit the request goes on to the usual checks (no token: 401).
    resp = requests.request(method, url, data=_body(limit), headers=headers, timeout=60)
    assert resp.status_code == 401, resp.text
