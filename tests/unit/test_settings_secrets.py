"""PACS_HASH_KEY fails closed when deployed.

Deployed (``K_SERVICE`` set, or a project id not starting with ``demo-``, as ``pacs.guard``
decides it) the key must be given and at least 32 bytes: with the public development key
``local-only-key-{project}`` anyone could compute keyed ids and log ids, open header seals
and forge share view strings. Emulator (``demo-*``) projects keep the development key.

The last tests start each function folder's ``main`` the way the runtime does
(functions-framework) and check that it exits, naming the setting, instead of serving.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from pacs import guard, ids
from pacs import settings as settings_module
from pacs.settings import Settings

from localcloud import config
from localcloud.stack import free_port

HASH_KEY_MIN_BYTES = 32  # the minimum
GOOD_KEY = "k" * HASH_KEY_MIN_BYTES
DEPLOYED_ENVS = [
    {"K_SERVICE": "sign-link", "GOOGLE_CLOUD_PROJECT": "clinic-prod"},
    {"GOOGLE_CLOUD_PROJECT": "clinic-prod"},  # a real project id, K_SERVICE or not
    {"K_SERVICE": "sign-link", "GOOGLE_CLOUD_PROJECT": "demo-pacs"},  # K_SERVICE: deployed
]


@pytest.mark.parametrize("env", DEPLOYED_ENVS)
@pytest.mark.parametrize("key", [None, "", "short-key", "k" * (HASH_KEY_MIN_BYTES - 1)])
def test_deployed_settings_refuse_a_missing_or_short_key(env, key):
    env = dict(env) if key is None else {**env, "PACS_HASH_KEY": key}
    with pytest.raises(settings_module.MissingSecret, match="PACS_HASH_KEY") as err:
        Settings.from_env(env)
    assert key is None or not key or key not in str(err.value)  # the key is never echoed


@pytest.mark.parametrize("env", DEPLOYED_ENVS)
def test_deployed_settings_use_the_given_key(env):
    settings = Settings.from_env({**env, "PACS_HASH_KEY": GOOD_KEY})
    assert settings.hash_key == GOOD_KEY.encode()
    public = f"local-only-key-{settings.project_id}".encode()
    assert ids.study_key(settings.hash_key, "u", "1.2") != ids.study_key(public, "u", "1.2")


@pytest.mark.parametrize("env", [{"GOOGLE_CLOUD_PROJECT": "demo-pacs"},
                                 {"GCLOUD_PROJECT": "demo-test-1"}, {}])
def test_emulator_projects_keep_the_development_key(env):
    settings = Settings.from_env(env)
    assert settings.project_id.startswith("demo-")
    assert settings.hash_key == f"local-only-key-{settings.project_id}".encode()
    assert Settings.from_env({**env, "PACS_HASH_KEY": "short"}).hash_key == b"short"


@pytest.mark.parametrize("env", DEPLOYED_ENVS + [{}])  # no project at all: not demo-
def test_the_guard_refuses_to_start_without_the_key(env):
    with pytest.raises(guard.UnsafeEnvironment, match="refusing to start.*PACS_HASH_KEY"):
        guard.assert_safe_environment(env)
    with pytest.raises(guard.UnsafeEnvironment, match="PACS_HASH_KEY.*at least 32 bytes"):
        guard.assert_safe_environment({**env, "PACS_HASH_KEY": "too-short"})
    guard.assert_safe_environment({**env, "PACS_HASH_KEY": GOOD_KEY})


def test_the_guard_allows_emulator_projects_without_a_key():
    guard.assert_safe_environment({"GOOGLE_CLOUD_PROJECT": "demo-pacs"})
    guard.assert_safe_environment({"GOOGLE_CLOUD_PROJECT": "demo-pacs",
                                   "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"})


# --- Starting the real entry points ------------------------------------------------------

FOLDERS = sorted({(fn["folder"], fn["entry_point"], fn["trigger"]["type"])
                  for fn in config.function_table()})
ONE_PER_FOLDER = sorted({folder: (folder, entry, kind)
                         for folder, entry, kind in FOLDERS}.values())


def _env(home, key: str | None) -> dict[str, str]:
    """A deployed function's environment without credentials or emulators."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "PYTHONPATH": str(config.ROOT / "functions"), "PYTHONUNBUFFERED": "1",
           "K_SERVICE": "pacs-function", "GOOGLE_CLOUD_PROJECT": "clinic-prod",
           "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9",
           "NO_GCE_CHECK": "True"}
    if key is not None:
        env["PACS_HASH_KEY"] = key
    return env


def _start(folder: str, entry: str, kind: str, env: dict[str, str]):
    """Start the function under functions-framework; return ("exited", output, status) when the
    process ends, or ("serving", port, process) once it answers on its port."""
    port = free_port()
    signature = "http" if kind == "http" else "cloudevent"
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions_framework", "--target", entry, "--source",
         str(config.ROOT / "functions" / folder / "main.py"), "--signature-type", signature,
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=config.ROOT / "functions" / folder, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    # Either the import fails and the process exits, or the server comes up: wait for the
    # first of the two (the 120 s bound is a safety net, not a timing assumption).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited", proc.stdout.read(), proc.returncode
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return "serving", port, proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{folder}: neither exited nor served within 120 s")


def _stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # the server started by this test and its workers
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


@pytest.mark.parametrize(("folder", "entry", "kind", "key"),
                         [(*f, None) for f in FOLDERS]
                         + [(*f, "k" * (HASH_KEY_MIN_BYTES - 1)) for f in ONE_PER_FOLDER])
def test_a_deployed_function_without_a_proper_key_exits_naming_the_setting(
        folder, entry, kind, key, tmp_path):
    outcome = _start(folder, entry, kind, _env(tmp_path, key))
    if outcome[0] == "serving":
        _stop(outcome[2])
        pytest.fail(f"{folder}: started serving without a usable PACS_HASH_KEY")
    _, output, status = outcome
    assert status != 0
    assert "refusing to start" in output and "PACS_HASH_KEY" in output, output[-2000:]
    assert ("missing" if key is None else "at least 32 bytes") in output, output[-2000:]


def test_a_deployed_function_with_the_key_starts_and_answers(tmp_path):
    outcome = _start("sign_link", "sign_link", "http", _env(tmp_path, "x" * 64))
    assert outcome[0] == "serving", outcome[1][-2000:]
    _, port, proc = outcome
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/no-such-endpoint", timeout=30)
        assert err.value.code == 404
    finally:
        _stop(proc)
