"""Signed URLs (``pacs.links.signing``), verified offline against the public key: the canonical
request and string to sign are rebuilt from the URL per Google's V4 specification
(``tests/v4_verifier.py``), never taken from the library that signed."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import google.auth.credentials
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from pacs.links import signing
from pacs.settings import Settings

from tests import v4_verifier
from tests.v4_verifier import BadSignedUrl, public_key_of_key_file, replace_param, verify

PROJECT = "demo-unit"
ENDPOINT = "http://127.0.0.1:9023"
REF = signing.ObjectRef("demo-unit-instances", "uid1/study1/instance1.dcm", "1712345678901234")


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    return signing.ensure_local_key(tmp_path_factory.mktemp("keys") / "signer.json", PROJECT)


@pytest.fixture(scope="module")
def public_key(key_file):
    return public_key_of_key_file(key_file)


@pytest.fixture(scope="module")
def storage_client():
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project=PROJECT, credentials=AnonymousCredentials())


@pytest.fixture(scope="module")
def signer(key_file):
    return signing.key_file_signer(key_file)


def _sign(storage_client, signer, ref=REF, ttl=900):
    return signing.sign_get_url(storage_client, signer, ref, ttl, ENDPOINT)


# --- The local key -------------------------------------------------------------------------

def test_local_key_is_private_idempotent_and_demo_only(tmp_path):
    # Arrange
    path = tmp_path / "keys" / "k.json"
    # Act
    first = signing.ensure_local_key(path, PROJECT)
    content = path.read_text()
    signing.ensure_local_key(path, PROJECT)
    # Assert
    assert first == path and path.read_text() == content  # created once, then reused
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    info = json.loads(content)
    assert info["type"] == "service_account"
    assert info["client_email"] == signing.local_account(PROJECT)
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(RuntimeError):
        signing.ensure_local_key(tmp_path / "real.json", "real-project")


def test_concurrent_key_creation_agrees_on_one_key(tmp_path):
    path = tmp_path / "k.json"
    threads = [threading.Thread(target=signing.ensure_local_key, args=(path, PROJECT))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key = public_key_of_key_file(path)  # one complete, loadable key
    assert key.key_size == 2048
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


# --- Signatures verify; tampering breaks them ----------------------------------------------

def test_key_file_url_verifies_and_names_exactly_one_object(storage_client, signer, public_key):
    # Act
    url = _sign(storage_client, signer)
    verified = verify(url, public_key, now=datetime.now(UTC), max_lifetime=3600)
    # Assert
    assert url.startswith(f"{ENDPOINT}/{REF.bucket}/")
    assert (verified.bucket, verified.object_name) == (REF.bucket, REF.name)
    assert verified.generation == REF.generation
    assert verified.account == signer.account == signing.local_account(PROJECT)
    assert verified.lifetime_seconds == 900
    # One object: no wildcard, no prefix, the whole path is signed.
    path = urllib.parse.urlsplit(url).path
    assert path == f"/{REF.bucket}/{urllib.parse.quote(REF.name)}"
    assert "*" not in path


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda u: u.replace("instance1.dcm", "instance2.dcm"), id="other-object"),
    pytest.param(lambda u: u.replace("/uid1/", "/uid2/"), id="other-owner"),
    pytest.param(lambda u: u.replace("demo-unit-instances", "demo-unit-derived"), id="bucket"),
    pytest.param(lambda u: replace_param(u, "X-Goog-Expires", "3600"), id="expiry"),
    pytest.param(lambda u: replace_param(u, "X-Goog-Date",
                                         (datetime.now(UTC) + timedelta(hours=1))
                                         .strftime("%Y%m%dT%H%M%SZ")), id="date"),
    pytest.param(lambda u: replace_param(u, "generation", "1"), id="generation"),
    pytest.param(lambda u: u.replace("&generation=1712345678901234", ""), id="no-generation"),
    pytest.param(lambda u: u + "&response-content-type=text%2Fhtml", id="added-param"),
    pytest.param(lambda u: u[:-4] + ("0000" if not u.endswith("0000") else "1111"),
                 id="signature"),
])
def test_tampering_breaks_the_signature(storage_client, signer, public_key, tamper):
    url = _sign(storage_client, signer)
    verify(url, public_key)  # the original verifies
    with pytest.raises(BadSignedUrl):
        verify(tamper(url), public_key)


def test_another_key_does_not_verify(storage_client, signer, tmp_path):
    url = _sign(storage_client, signer)
    other = public_key_of_key_file(signing.ensure_local_key(tmp_path / "o.json", PROJECT))
    with pytest.raises(BadSignedUrl, match="signature"):
        verify(url, other)


def test_verifier_rejects_an_expired_url(storage_client, signer, public_key):
    url = _sign(storage_client, signer, ttl=60)
    with pytest.raises(BadSignedUrl, match="validity window"):
        verify(url, public_key, now=datetime.now(UTC) + timedelta(seconds=61))


def test_object_names_needing_escapes_still_verify(storage_client, signer, public_key):
    ref = signing.ObjectRef("b", "previews/u/s/a b+c~d.png", "7")
    verified = verify(_sign(storage_client, signer, ref), public_key)
    assert verified.object_name == ref.name


def test_no_url_without_generation_or_with_a_bad_lifetime(storage_client, signer):
    with pytest.raises(ValueError):
        _sign(storage_client, signer, signing.ObjectRef("b", "o", ""))
    for ttl in (0, -1, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError):
            _sign(storage_client, signer, ttl=ttl)


# --- Lifetimes -----------------------------------------------------------------------------

def test_link_lifetime_defaults_to_15_minutes_and_never_exceeds_an_hour():
    now = datetime.now(UTC)
    assert signing.link_ttl(Settings.from_env({}), now) == 900
    assert Settings.from_env({"PACS_LINK_TTL_SECONDS": "86400"}).link_ttl_seconds == 3600
    assert signing.link_ttl(Settings.from_env({"PACS_LINK_TTL_SECONDS": "86400"}), now) == 3600
    # A share that ends sooner shortens its URLs; never below one second.
    settings = Settings.from_env({})
    assert signing.link_ttl(settings, now, now + timedelta(seconds=30)) == 30
    assert signing.link_ttl(settings, now, now - timedelta(seconds=30)) == 1


def test_reported_expiry_is_never_after_the_urls_expiry(storage_client, signer, public_key):
    issued = datetime.now(UTC)
    url = _sign(storage_client, signer, ttl=900)
    reported = signing.expiry_of_batch(issued, 900)
    assert reported <= verify(url, public_key).expires_at <= reported + timedelta(seconds=2)


# --- Parallel batches ------------------------------------------------------------------------

def test_sign_many_keeps_order_and_scopes_each_url_to_its_object(storage_client, signer,
                                                                 public_key):
    refs = [signing.ObjectRef("bk", f"u/s/{i:03d}.dcm", str(1000 + i)) for i in range(40)]
    urls = signing.sign_many(storage_client, signer, refs, 900, ENDPOINT, workers=8)
    assert len(urls) == len(set(urls)) == 40
    for ref, url in zip(refs, urls, strict=True):
        verified = verify(url, public_key, max_lifetime=3600)
        assert (verified.object_name, verified.generation) == (ref.name, ref.generation)


# --- IAM signBlob (deployed, no key file) ----------------------------------------------------

class FakeSourceCredentials(google.auth.credentials.Credentials):
    """What google.auth.default() returns deployed: a token that must be refreshed."""

    def __init__(self):
        super().__init__()
        self.refreshes = 0

    def refresh(self, request):
        self.refreshes += 1
        self.token = f"access-token-{self.refreshes}"
        self.expiry = None


class FakeIamTransport:
    """A google.auth transport that plays the IAM Credentials signBlob API, signing with a
    key the test controls and recording which account each call asked for."""

    def __init__(self, private_key, latency: float = 0.0):
        self.private_key = private_key
        self.latency = latency
        self.calls: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        if self.latency:
            time.sleep(self.latency)
        payload = base64.b64decode(json.loads(body)["payload"])
        with self.lock:
            self.calls.append({"url": url, "method": method,
                               "authorization": (headers or {}).get("authorization"),
                               "payload": payload})
        signature = self.private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        return _Response(200, json.dumps({"keyId": "k1", "signedBlob":
                                          base64.b64encode(signature).decode()}).encode())


class _Response:
    def __init__(self, status, data):
        self.status, self.data, self.headers = status, data, {}


@pytest.fixture(scope="module")
def controlled_key(key_file):
    info = json.loads(key_file.read_text())
    return serialization.load_pem_private_key(info["private_key"].encode(), password=None)


def test_iam_path_signs_as_the_right_account_and_verifies(storage_client, controlled_key,
                                                          public_key):
    # Arrange: deployed shape, no key file: source credentials + account + transport
    account = "pacs-functions@real-project.iam.gserviceaccount.com"
    source = FakeSourceCredentials()
    transport = FakeIamTransport(controlled_key)
    signer = signing.iam_signer(source, account, transport)
    refs = [signing.ObjectRef("bk", f"u/s/{i}.dcm", str(i + 1)) for i in range(5)]
    # Act
    urls = signing.sign_many(storage_client, signer, refs, 900, "https://storage.googleapis.com",
                             workers=4)
    # Assert: the library asked IAM to sign as the configured account, once per URL,
    # with the source credentials' refreshed token, and every URL verifies.
    assert signer.kind == "iam" and signer.account == account
    assert len(transport.calls) == len(refs)
    expected = (f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
                f"{account}:signBlob")
    assert {c["url"] for c in transport.calls} == {expected}
    assert {c["method"] for c in transport.calls} == {"POST"}
    assert source.refreshes >= 1
    assert all(c["authorization"] == f"Bearer {source.token}" for c in transport.calls)
    for ref, url in zip(refs, urls, strict=True):
        verified = verify(url, public_key, now=datetime.now(UTC), max_lifetime=3600)
        assert verified.account == account
        assert (verified.object_name, verified.generation) == (ref.name, ref.generation)
        # What IAM signed is the V4 string to sign for exactly this URL.
    assert all(c["payload"].startswith(b"GOOG4-RSA-SHA256\n") for c in transport.calls)


def test_iam_errors_surface(storage_client, controlled_key):
    class Refusing(FakeIamTransport):
        def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kw):
            return _Response(403, b'{"error": "denied"}')

    from google.auth import exceptions

    signer = signing.iam_signer(FakeSourceCredentials(), "a@p.iam.gserviceaccount.com",
                                Refusing(controlled_key))
    with pytest.raises(exceptions.TransportError):
        _sign(storage_client, signer)


# --- The measured signing cost ---------------------------------------------------------------

def test_signing_cost_benchmark(storage_client, signer, controlled_key, capsys):
    """Prints the time per URL (key file, sequential and parallel; IAM with a simulated
    round trip) for a page of 500. The figures are in the report; the asserts are loose
    bounds so a slow machine does not fail the suite."""
    refs = [signing.ObjectRef("bk", f"u/s/{i:04d}.dcm", str(i + 1)) for i in range(500)]
    start = time.perf_counter()
    signing.sign_many(storage_client, signer, refs, 900, ENDPOINT, workers=1)
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    signing.sign_many(storage_client, signer, refs, 900, ENDPOINT, workers=16)
    parallel = time.perf_counter() - start
    latency = 0.05  # a typical signBlob round trip from Cloud Functions is tens of ms
    iam = signing.iam_signer(FakeSourceCredentials(), "a@p.iam.gserviceaccount.com",
                             FakeIamTransport(controlled_key, latency=latency))
    start = time.perf_counter()
    signing.sign_many(storage_client, iam, refs[:160], 900, ENDPOINT, workers=16)
    iam_160 = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[signing cost] key file: {sequential / 500 * 1000:.2f} ms/URL sequential, "
              f"500 URLs in {sequential:.2f} s; 16 threads: {parallel:.2f} s. "
              f"IAM at {latency * 1000:.0f} ms/call, 16 threads: 160 URLs in {iam_160:.2f} s "
              f"(~{iam_160 / 160 * 500:.1f} s per 500)")
    assert sequential / 500 < 0.05
    assert iam_160 < 160 * latency / 4  # parallel signBlob calls overlap


def test_verifier_is_independent_of_the_library():
    """The verifier imports nothing from google.cloud.storage (it rebuilds from the spec)."""
    source = open(v4_verifier.__file__).read()
    assert "google.cloud" not in source and "_signing" not in source


# --- Share views and client addresses (the pieces around the URLs) ---------------------------

def test_share_view_strings_are_bound_to_share_view_number_and_expiry():
    from pacs.errors import NotFound
    from pacs.links import shares

    key = b"k" * 32
    now = datetime.now(UTC)
    view = shares.make_view(key, "a" * 20, 3, now + timedelta(minutes=15))
    shares.check_view(key, "a" * 20, view, now)  # valid
    share_id, number, expires, mac = view.split(".")
    forged = [
        ".".join(["b" * 20, number, expires, mac]),            # another share
        ".".join([share_id, "4", expires, mac]),                # another view number
        ".".join([share_id, number, str(int(expires) + 3600), mac]),  # longer life
        view[:-1] + ("0" if view[-1] != "0" else "1"),          # MAC
        "", None, 7,
    ]
    for bad in forged:
        with pytest.raises(NotFound):
            shares.check_view(key, "a" * 20, bad, now)
    with pytest.raises(NotFound):
        shares.check_view(b"other-key" * 4, "a" * 20, view, now)
    with pytest.raises(NotFound) as expired:
        shares.check_view(key, "a" * 20, view, now + timedelta(minutes=16))
    assert expired.value.code == "view_expired"


def test_share_tokens_are_random_and_only_their_hash_is_kept():
    from pacs.links import shares

    tokens = {shares.new_token()[1] for _ in range(100)}
    assert len(tokens) == 100
    share_id, token = shares.new_token()
    assert shares.TOKEN.match(token).group(1) == share_id
    assert len(token.split(".")[1]) == 43  # 256 random bits
    assert shares.token_hash(token) != token and len(shares.token_hash(token)) == 64


@pytest.mark.parametrize("forwarded,hops,expected", [
    (None, 1, "10.0.0.9"),                                # no proxy header: the peer
    ("198.51.100.4", 1, "198.51.100.4"),                  # one front end appended it
    ("6.6.6.6, 198.51.100.4", 1, "198.51.100.4"),         # a spoofed entry before it
    ("6.6.6.6, 198.51.100.4, 35.1.1.1", 2, "198.51.100.4"),  # two trusted hops
    ("198.51.100.4", 0, "10.0.0.9"),                      # no trusted proxy: the peer
    ("198.51.100.4", 5, "198.51.100.4"),                  # more hops than entries
])
def test_client_ip_trusts_only_the_configured_proxy_hops(forwarded, hops, expected):
    from pacs.links.access_log import client_info

    headers = {"User-Agent": "x" * 1000}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    info = client_info(headers, "10.0.0.9", hops)
    assert info.ip == expected
    assert info.user_agent == "x" * 256


def test_share_and_access_list_queries_have_their_composite_indexes():
    """The emulator runs any query; the shapes of the two list queries, read from their
    protobuf, must each match a composite index of firestore.indexes.json."""
    from pathlib import Path

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore
    from google.cloud.firestore_v1.types import StructuredQuery
    from pacs.links import access_log, shares

    client = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
    indexes = json.loads((Path(__file__).resolve().parents[2] / "firestore.indexes.json")
                         .read_text())["indexes"]
    declared = {(i["collectionGroup"], i["queryScope"],
                 tuple((f["fieldPath"], f.get("order")) for f in i["fields"])) for i in indexes}
    for query in (shares.list_query(client, "u"), access_log.list_query(client, "u", 10)):
        pb = StructuredQuery.pb(query._to_protobuf())
        [selector] = pb.from_
        field_filter = pb.where.field_filter
        assert StructuredQuery.FieldFilter.Operator(field_filter.op).name == "EQUAL"
        fields = ((field_filter.field.field_path, "ASCENDING"),) + tuple(
            (o.field.field_path, StructuredQuery.Direction(o.direction).name) for o in pb.order_by)
        assert (selector.collection_id, "COLLECTION", fields) in declared, fields
