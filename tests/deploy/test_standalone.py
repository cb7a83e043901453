"""Each staged build folder deploys standalone: in a fresh venv built only from its own
``requirements.txt`` (``--no-deps``, then ``pip check``: the pins are complete), it imports
every module its code can reach, starts under functions-framework and answers a request,
with no credentials and no emulator variables.

- HTTP functions: a request the function refuses before it needs any cloud client.
- Storage functions: a CloudEvent for an object in a bucket they do not own: ignored (2xx)
  before any client is built.
- Pub/Sub functions: a message they ignore; one that must build clients first fails for
  lack of credentials (500 with ``DefaultCredentialsError`` in its log), never on an import.

Venvs live in a temporary folder for the session (pip's cache makes rebuilding cheap). The
interpreter is Python 3.12 (the runtime) when one is found, else the running one.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy import plan as planmod
from localcloud.stack import free_port
from tests.deploy.conftest import ROOT
from tests.deploy.test_requirements import LAZY_ONLY

pytestmark = pytest.mark.slow

PROJECT = "demo-deploytest"
CREDENTIALS_FAILURE = "DefaultCredentialsError"

# Requests an HTTP function answers before it builds a client (method, path, statuses).
HTTP_PROBES = {
    "create_upload": ("GET", "/", {400}),
    "sign_link": ("GET", "/no-such-endpoint", {404}),
    "studies": ("PUT", "/", {400, 401, 404, 405, 501}),
    "privacy_requests": ("GET", "/no-such-endpoint", {400, 401, 404, 405, 501}),
    "dicomweb": ("GET", "/no-such-endpoint", {404}),
}
PUBSUB_PAYLOADS = {"run_retention_job": {"job": "no-such-job"}}


def _python312() -> str:
    candidates = [os.environ.get("PACS_TEST_PYTHON312", ""), shutil.which("python3.12") or "",
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "import sys, venv; "
                                         "assert sys.version_info[:2] == (3, 12)"],
                                        capture_output=True).returncode == 0:
            return candidate
    return sys.executable


def _clean_env(home: Path) -> dict[str, str]:
    """No credentials, no emulators, no metadata server; the policy version the deploy plan
    sets on every function (a staged function cannot read ../shared)."""
    config = home / "gcloud"
    config.mkdir(parents=True, exist_ok=True)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "GOOGLE_CLOUD_PROJECT": PROJECT, "CLOUDSDK_CONFIG": str(config),
            "PACS_POLICY_VERSION": planmod.policy_version(),
            "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9",
            "NO_GCE_CHECK": "True", "PYTHONUNBUFFERED": "1"}


@dataclass
class Venv:
    folder: str
    path: Path
    python: Path
    install_seconds: float


def _build_venv(python: str, folder: str, root: Path) -> Venv:
    start = time.monotonic()
    path = root / folder
    subprocess.run([python, "-m", "venv", str(path)], check=True, capture_output=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    requirements = ROOT / "functions" / folder / "requirements.txt"
    proc = subprocess.run([*pip, "install", "-q", "--no-deps", "-r", str(requirements)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{folder}: {proc.stderr[-3000:]}"
    check = subprocess.run([*pip, "check"], capture_output=True, text=True)
    assert check.returncode == 0, f"{folder}: incomplete pins:\n{check.stdout}{check.stderr}"
    return Venv(folder, path, path / "bin" / "python", time.monotonic() - start)


@pytest.fixture(scope="session")
def venvs(tmp_path_factory, dry_run) -> dict[str, Venv]:
    root = tmp_path_factory.mktemp("function-venvs")
    python = _python312()
    folders = sorted({fn["folder"] for fn in dry_run.table})
    with ThreadPoolExecutor(max_workers=3) as pool:
        built = list(pool.map(lambda f: _build_venv(python, f, root), folders))
    print(f"\nfunction venvs ({python}): "
          + ", ".join(f"{v.folder} {v.install_seconds:.0f}s" for v in built))
    return {v.folder: v for v in built}


def test_fresh_venvs_use_the_runtime_python(venvs):
    version = subprocess.run([str(next(iter(venvs.values())).python), "-c",
                              "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    if version != "3.12":
        pytest.skip(f"no Python 3.12 here: the venvs use {version}")


def test_every_reachable_module_imports(venvs, dry_run, tmp_path):
    """Lazy imports too: import every pacs module (pixel code only where it runs)."""
    for fn in dry_run.table:
        venv = venvs[fn["folder"]]
        skip = [m for m, folders in LAZY_ONLY.items() if fn["folder"] not in folders]
        code = ("import importlib, pkgutil, pacs, main\n"
                f"skip = {skip!r}\n"
                "for m in pkgutil.walk_packages(pacs.__path__, 'pacs.'):\n"
                "    if m.name not in skip:\n"
                "        importlib.import_module(m.name)\n")
        if fn["folder"] == "extract_metadata":
            code += "import libjpeg, openjpeg, rle, jpeg_ls, numpy, PIL\n"
        proc = subprocess.run([str(venv.python), "-c", code],
                              cwd=dry_run.build_dir / "functions" / fn["name"],
                              env=_clean_env(tmp_path / fn["name"]), capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"{fn['name']}: {proc.stderr[-2000:]}"




def _request(fn: dict) -> tuple[str, str, dict[str, str], bytes]:
    """(method, path, headers, body) of the probe for one function."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    trigger = fn["trigger"]
    if trigger["type"] == "http":
        method, path, _ = HTTP_PROBES[fn["entry_point"]]
        return method, path, {}, b""
    if trigger["type"] == "storage":
        headers = {"ce-specversion": "1.0", "ce-id": "deploytest-1",
                   "ce-type": "google.cloud.storage.object.v1.finalized",
                   "ce-source": "//storage.googleapis.com/projects/_/buckets/other-bucket",
                   "ce-subject": "objects/x", "ce-time": now,
                   "Content-Type": "application/json"}
        return "POST", "/", headers, json.dumps({"bucket": "other-bucket", "name": "x"}).encode()
    payload = PUBSUB_PAYLOADS.get(fn["entry_point"], {})
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    body = {"message": {"data": data, "attributes": {}, "messageId": "deploytest-1",
                        "publishTime": now},
            "subscription": f"projects/{PROJECT}/subscriptions/deploytest"}
    headers = {"ce-specversion": "1.0", "ce-id": "deploytest-1",
               "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
               "ce-source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/{trigger['topic']}",
               "ce-time": now, "Content-Type": "application/json"}
    return "POST", "/", headers, json.dumps(body).encode()


@dataclass
class Outcome:
    name: str
    status: int
    body: str
    log: str
    start_seconds: float


def _serve_and_probe(fn: dict, venv: Venv, folder: Path, home: Path) -> Outcome:
    port = free_port()
    signature = "http" if fn["trigger"]["type"] == "http" else "cloudevent"
    log_path = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(venv.path / "bin" / "functions-framework"), "--target", fn["entry_point"],
             "--source", "main.py", "--signature-type", signature, "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=folder, env=_clean_env(home), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                return Outcome(fn["name"], -1, "", log_path.read_text(), 0)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    return Outcome(fn["name"], -2, "", log_path.read_text(), 0)
                time.sleep(0.2)
        start_seconds = time.monotonic() - started
        method, path, headers, body = _request(fn)
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body or None,
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, text = response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode(errors="replace")
        time.sleep(0.3)  # let the log catch up
        return Outcome(fn["name"], status, text, log_path.read_text(), start_seconds)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers, started above
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_each_staged_function_starts_and_answers(venvs, dry_run, tmp_path):
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(
            lambda fn: (fn, _serve_and_probe(fn, venvs[fn["folder"]],
                                             dry_run.build_dir / "functions" / fn["name"],
                                             tmp_path / fn["name"])), dry_run.table))
    failures, report = [], []
    for fn, out in outcomes:
        kind = fn["trigger"]["type"]
        report.append(f"{out.name} ({kind}): {out.status} after {out.start_seconds:.1f}s start")
        if out.status < 0:
            failures.append(f"{out.name}: did not start\n{out.log[-2000:]}")
            continue
        if "ModuleNotFoundError" in out.log or "ImportError" in out.log:
            failures.append(f"{out.name}: import failure\n{out.log[-2000:]}")
            continue
        if kind == "http":
            expected = HTTP_PROBES[fn["entry_point"]][2]
            if out.status not in expected:
                failures.append(f"{out.name}: {out.status} not in {expected}: {out.body[:300]}")
            else:
                assert json.loads(out.body)["error"], out.body
        elif kind == "storage":
            if not 200 <= out.status < 300:
                failures.append(f"{out.name}: foreign-bucket event not ignored: {out.status}\n"
                                f"{out.log[-2000:]}")
            elif CREDENTIALS_FAILURE in out.log:
                failures.append(f"{out.name}: built clients for an event it ignores")
        else:
            ok = 200 <= out.status < 300 or (out.status == 500 and CREDENTIALS_FAILURE in out.log)
            if not ok:
                failures.append(f"{out.name}: {out.status}\n{out.log[-2000:]}")
    print("\n" + "\n".join(report))
    assert not failures, "\n\n".join(failures)
