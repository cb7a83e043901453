"""Signing cost of viewer URLs: ``python bench/signing.py [--urls 500] [--iam-ms 50]``.

Measures V4 signing with a local service-account key (sequential and with the function's 16
threads) and models the deployed IAM path: one ``signBlob`` round trip per URL, signed
through the real google-auth IAM signer against a fake transport that sleeps ``--iam-ms``.
Offline: no emulator or network is used.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from google.auth import credentials as auth_credentials  # noqa: E402
from google.auth.credentials import AnonymousCredentials  # noqa: E402
from google.cloud import storage  # noqa: E402
from pacs.links import signing  # noqa: E402


class _Source(auth_credentials.Credentials):
    def refresh(self, request):
        self.token = "bench-token"


class _FakeIam:
    def __init__(self, key, latency):
        self.key, self.latency = key, latency

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        time.sleep(self.latency)
        payload = base64.b64decode(json.loads(body)["payload"])
        signature = self.key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        data = json.dumps({"signedBlob": base64.b64encode(signature).decode()}).encode()
        return type("R", (), {"status": 200, "data": data, "headers": {}})()


def _time(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=500)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--iam-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    client = storage.Client(project="demo-bench", credentials=AnonymousCredentials())
    refs = [signing.ObjectRef("demo-bench-instances", f"uid/study/{i:032x}.dcm", str(i + 1))
            for i in range(args.urls)]
    endpoint = "https://storage.googleapis.com"
    with tempfile.TemporaryDirectory() as tmp:
        path = signing.ensure_local_key(Path(tmp) / "key.json", "demo-bench")
        signer = signing.key_file_signer(path)
        key = serialization.load_pem_private_key(
            json.loads(path.read_text())["private_key"].encode(), password=None)
    signing.sign_many(client, signer, refs[:20], 900, endpoint, workers=1)  # warm up
    seq = _time(lambda: signing.sign_many(client, signer, refs, 900, endpoint, workers=1))
    par = _time(lambda: signing.sign_many(client, signer, refs, 900, endpoint,
                                          workers=args.workers))
    iam = signing.iam_signer(_Source(), "bench@demo-bench.iam.gserviceaccount.com",
                             _FakeIam(key, args.iam_ms / 1000))
    iam_time = _time(lambda: signing.sign_many(client, iam, refs, 900, endpoint,
                                               workers=args.workers))
    n = args.urls
    print(f"key file, sequential : {seq / n * 1000:6.2f} ms/URL, {n} URLs in {seq:5.2f} s")
    print(f"key file, {args.workers:2d} threads: {par / n * 1000:6.2f} ms/URL, "
          f"{n} URLs in {par:5.2f} s")
    print(f"IAM signBlob at {args.iam_ms:.0f} ms, {args.workers} threads: "
          f"{iam_time / n * 1000:6.2f} ms/URL, {n} URLs in {iam_time:5.2f} s "
          f"(sequential would be {n * args.iam_ms / 1000:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
