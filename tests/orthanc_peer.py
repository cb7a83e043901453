"""A real Orthanc (Debian's ``orthanc``) with its DICOMweb plugin (``orthanc-dicomweb``) as a
peer of our DICOMweb: its own temporary folder, its own free HTTP port, its REST API behind
a random password, configured from the JSON block of docs/dicomweb.md's *Connecting an
Orthanc peer* (so the test does what the page tells a person to do).

Orthanc 1.10 cannot bind one address; ``RemoteAccessAllowed: false`` refuses every client
that is not on loopback, and the password refuses the rest (deny by default). It runs in
this machine's network namespace because it must reach our function on loopback."""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
DOCS = ROOT / "docs" / "dicomweb.md"
SECTION = "## Connecting an Orthanc peer"
DOCS_URL = "https://<site>/dicomweb/"
DOCS_KEY = "<api key>"
PORTS = range(20000, 32000)


def installed() -> bool:
    """Whether Orthanc and its DICOMweb plugin are on this machine (``make install``)."""
    return ORTHANC.exists() and DICOMWEB_PLUGIN.exists()


def docs_snippet() -> str:
    """The JSON block of the docs' Orthanc section, as printed there."""
    text = DOCS.read_text()
    start = text.index(SECTION)
    match = re.compile(r"```json\n(.*?)```", re.S).search(text, start)
    if not match:
        raise AssertionError(f"no JSON block under {SECTION!r} in {DOCS}")
    return "\n".join(line.strip() for line in match.group(1).splitlines())


def peer_config(url: str, api_key: str) -> dict[str, Any]:
    """The docs' ``DicomWeb`` section with the placeholders replaced, as a person would."""
    snippet = docs_snippet()
    assert DOCS_URL in snippet and DOCS_KEY in snippet, snippet
    return json.loads(snippet.replace(DOCS_URL, url.rstrip("/") + "/")
                      .replace(DOCS_KEY, api_key))


def free_port() -> int:
    """A port of 20000-31999 that nothing listens on (any address) right now."""
    for _ in range(200):
        port = secrets.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-31999")


class OrthancPeer:
    """One Orthanc process; ``get``/``post`` call its REST API with its password."""

    def __init__(self, workdir: Path, dicomweb: dict[str, Any]):
        self.workdir = workdir
        self.password = secrets.token_urlsafe(24)
        self.auth = ("pacs-test", self.password)
        self.dicomweb = dicomweb
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        """Debian's layout: a folder of JSON files, the DicomWeb section in its own file."""
        folder = self.workdir / "etc"
        folder.mkdir(parents=True, exist_ok=True)
        base = {"Name": "pacs-peer-test", "StorageDirectory": str(self.workdir / "db"),
                "IndexDirectory": str(self.workdir / "db"), "HttpPort": self.port,
                "DicomServerEnabled": False, "RemoteAccessAllowed": False,
                "AuthenticationEnabled": True, "RegisteredUsers": {"pacs-test": self.password},
                "Plugins": [str(DICOMWEB_PLUGIN)], "StorageCompression": False}
        (folder / "orthanc.json").write_text(json.dumps(base))
        (folder / "dicomweb.json").write_text(json.dumps(self.dicomweb))
        for f in folder.iterdir():
            f.chmod(0o600)  # the API key and the password: readable by this user only
        return folder

    def start(self, timeout: float = 60) -> OrthancPeer:
        """Start on a free port; a port taken between the check and Orthanc's bind makes
        Orthanc exit, and another port is chosen (at most 5)."""
        for _ in range(5):
            self.port = free_port()
            folder = self._write_config()
            log = (self.workdir / "orthanc.log").open("ab")
            self.proc = subprocess.Popen([str(ORTHANC), str(folder)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if requests.get(f"{self.url}/system", auth=self.auth, timeout=2).ok:
                        return self
                except requests.ConnectionError:
                    pass
                time.sleep(0.2)
            if self.proc.poll() is None:
                self.stop()
                raise RuntimeError(f"Orthanc did not answer in {timeout} s: {self.log_tail()}")
        raise RuntimeError(f"Orthanc did not start: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / "orthanc.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", auth=self.auth, timeout=120, **kw)

    def post(self, path: str, body: Any = None, data: bytes | None = None,
             **kw: Any) -> requests.Response:
        if data is None:
            data = json.dumps(body).encode()
        return requests.post(f"{self.url}{path}", data=data, auth=self.auth, timeout=300, **kw)
