"""Firebase Hosting stand-in: serves the built web client (``web/dist``) and forwards
``/api/...`` to the HTTP functions the way the ``hosting.rewrites`` of ``firebase.json`` do.

What it does, and why each part exists:

* **Static files** from ``web/dist``, with the ``hosting.headers`` of ``firebase.json`` (the
  same Content-Security-Policy and security headers production sends; ``source`` globs
  and ``regex`` entries, as Hosting matches them). The OHIF Viewer under ``/ohif/`` has
  its own entry, and the site-wide one leaves ``/ohif`` out (``docs/web.md``). Locally the page also
  talks to the Firestore and Storage emulators on other origins, so their origins are added
  to ``connect-src``/``img-src`` here only; production's policy is the file's.
* **Rewrites** from ``firebase.json``: ``function`` rewrites go to the function's local port
  (``infra/functions.json``), path kept as Hosting keeps it; ``destination`` rewrites serve
  that file (the single-page app's ``/index.html``).
* **``/__/firebase/init.json``** (Hosting's own reserved config URL): what the client needs to find its backend: project id, API key,
  emulator hosts, idle sign-out time. The same build works for ``make dev`` (``demo-pacs``)
  and for test stacks (``demo-test-*`` on other ports). Production serves its own file (see
  docs/web.md).
* **The Auth emulator, same-origin** (``/identitytoolkit.googleapis.com/...``,
  ``/securetoken.googleapis.com/...``): the client's ``connectAuthEmulator`` points here. The
  emulator maps every API key to its default project (``demo-pacs``), so for any other
  project the calls are rewritten as the emulator's owner calls naming that project
  (``targetProjectId`` + ``Authorization: Bearer owner``, the trick of
  ``cli/pacs_cli/session.py``); see :class:`AuthBridge`.
* **``/__/analytics``**: the local analytics sink. The client posts events here only after
  the visitor accepted analytics; tests read them back with ``GET``.

Run: ``python -m localcloud.hosting --spec '{...}'`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import http.client
import json
import mimetypes
import os
import posixpath
import re
import sys
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from localcloud import config

WEB_DIST = config.ROOT / "web" / "dist"
API_KEY = "demo-local-key"
AUTH_PREFIXES = ("/identitytoolkit.googleapis.com/", "/securetoken.googleapis.com/")
MAX_BODY = 64 * 1024 * 1024
HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailers", "transfer-encoding", "upgrade", "host", "content-length"}


@dataclass
class HostingSpec:
    """What one hosting server serves.

    Attributes
    ----------
    project : str
        The project of the stack behind it.
    port : int
    function_urls : dict
        Function name (``infra/functions.json``) → base URL.
    auth_host, firestore_host, storage_url : str
        ``host:port`` of the Auth and Firestore emulators, URL of the Storage emulator.
    idle_seconds : int
        Sign-out after this much inactivity (HIPAA automatic logoff).
    root : str
        The built web client.
    """

    project: str
    port: int
    function_urls: dict[str, str]
    auth_host: str
    firestore_host: str
    storage_url: str
    idle_seconds: int = 15 * 60
    root: str = str(WEB_DIST)
    default_project: str = config.DEFAULT_PROJECT
    extra: dict[str, Any] = field(default_factory=dict)

    def client_config(self) -> dict[str, Any]:
        fs_host, _, fs_port = self.firestore_host.rpartition(":")
        return {
            "projectId": self.project,
            "apiKey": API_KEY,
            "authDomain": f"{self.project}.firebaseapp.com",
            "apiBase": "/api",
            "emulators": {"auth": "same-origin",
                          "firestore": {"host": fs_host, "port": int(fs_port)}},
            "idleTimeoutSeconds": self.idle_seconds,
            "analyticsEndpoint": "/__/analytics",
            **self.extra,
        }


def hosting_section() -> dict[str, Any]:
    return json.loads((config.ROOT / "firebase.json").read_text())["hosting"]


def function_names_by_id() -> dict[str, str]:
    """Hosting names functions by their deployed id, which is the table's ``name``."""
    return {f["name"]: f["name"] for f in config.function_table()}


def match_source(pattern: str, path: str) -> bool:
    """Hosting's glob: ``**`` any depth, ``*`` one segment."""
    if pattern == "**":
        return True
    if pattern.endswith("/**"):
        base = pattern[:-3]
        return path == base or path.startswith(base + "/")
    return fnmatch.fnmatchcase(path, pattern)


def headers_for(path: str, section: dict[str, Any]) -> dict[str, str]:
    """The ``hosting.headers`` entries whose ``source`` glob or ``regex`` (RE2, which
    Hosting matches against the whole path; the patterns used are also valid Python
    regular expressions) matches ``path`` (later wins)."""
    out: dict[str, str] = {}
    for entry in section.get("headers", []):
        if "regex" in entry:
            matched = re.fullmatch(entry["regex"], path) is not None
        else:
            matched = _glob(entry["source"], path)
        if matched:
            for header in entry["headers"]:
                out[header["key"]] = header["value"]
    return out


def _glob(pattern: str, path: str) -> bool:
    # Hosting's header sources are globs like "**", "/assets/**", "**/*.@(js|css)".
    if pattern.startswith("**/*.@(") and pattern.endswith(")"):
        exts = pattern[len("**/*.@("):-1].split("|")
        return any(path.endswith("." + e) for e in exts)
    return match_source(pattern if pattern.startswith("/") or pattern == "**" else "/" + pattern,
                        path)


def local_csp(policy: str, spec: HostingSpec) -> str:
    """Production's CSP plus the emulator origins the page talks to locally."""
    storage = spec.storage_url.rstrip("/")
    firestore = f"http://{spec.firestore_host}"
    extra = {"connect-src": [firestore, storage], "img-src": [storage]}
    parts = []
    for directive in (d.strip() for d in policy.split(";") if d.strip()):
        name = directive.split()[0]
        if name == "upgrade-insecure-requests":  # the emulators speak plain HTTP
            continue
        if name in extra:
            directive = " ".join([directive, *extra[name]])
        parts.append(directive)
    return "; ".join(parts)


def _jwt_payload(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}


class AuthBridge:
    """Forwards the client's Identity Toolkit calls to the Auth emulator, in its project.

    For the emulator's default project the calls pass unchanged. For another project each
    call the web client makes is sent as the emulator's owner call naming that project:

    ``accounts:signUp``
        an owner sign-up only creates the user, so it is followed by a password sign-in
        whose tokens are returned;
    ``accounts:signInWithPassword``
        passes with ``targetProjectId``;
    ``accounts:lookup``, ``accounts:update``, ``accounts:delete``
        owner calls take ``localId`` instead of ``idToken``: the uid is read from the
        (unsigned, emulator) ID token;
    ``securetoken /v1/token`` (refresh)
        cannot name a project; the emulator refuses it for other projects, so a test
        session ends when its first ID token expires (one hour).
    """

    def __init__(self, spec: HostingSpec) -> None:
        self.spec = spec

    @property
    def bridged(self) -> bool:
        return self.spec.project != self.spec.default_project

    def forward(self, method: str, path: str, body: bytes, headers: dict[str, str]
                ) -> tuple[int, dict[str, str], bytes]:
        if not self.bridged or not path.startswith("/identitytoolkit.googleapis.com/v1/accounts:"):
            return _send(f"http://{self.spec.auth_host}", method, path, body, headers)
        op = path.split("accounts:", 1)[1].split("?", 1)[0]
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = {}
        request["targetProjectId"] = self.spec.project
        if op in ("lookup", "update", "delete") and "idToken" in request:
            uid = _jwt_payload(request.pop("idToken")).get("user_id")
            if op == "lookup":
                request["localId"] = [uid]
            else:
                request["localId"] = uid
        status, out_headers, out = self._owner(op, request)
        if op == "signUp" and status == 200 and "password" in request:
            status, out_headers, out = self._owner("signInWithPassword", {
                "email": request.get("email"), "password": request["password"],
                "returnSecureToken": True, "targetProjectId": self.spec.project})
        return status, out_headers, out

    def _owner(self, op: str, request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return _send(f"http://{self.spec.auth_host}", "POST",
                     f"/identitytoolkit.googleapis.com/v1/accounts:{op}?key={API_KEY}",
                     json.dumps(request).encode(),
                     {"Content-Type": "application/json", "Authorization": "Bearer owner"})


def _send(base: str, method: str, path: str, body: bytes, headers: dict[str, str],
          timeout: float = 600) -> tuple[int, dict[str, str], bytes]:
    parsed = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_HEADERS}
        return resp.status, out, data
    finally:
        conn.close()


def make_handler(spec: HostingSpec) -> type[BaseHTTPRequestHandler]:
    section = hosting_section()
    root = Path(spec.root).resolve()
    bridge = AuthBridge(spec)
    names = function_names_by_id()
    analytics: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "pacs-hosting"

        def log_message(self, fmt: str, *args: Any) -> None:  # access log: path only, no query
            sys.stderr.write(f"{self.command} {self.path.split('?')[0]} -> {args[1] if len(args) > 1 else ''}\n")

        # --- plumbing ------------------------------------------------------------------
        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(length) if length else b""

        def _reply(self, status: int, headers: dict[str, str], body: bytes,
                   path: str | None = None) -> None:
            self.send_response(status)
            sent = set()
            for key, value in headers.items():
                self.send_header(key, value)
                sent.add(key.lower())
            for key, value in self._security_headers(path or self.path.split("?")[0]).items():
                if key.lower() not in sent:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _security_headers(self, path: str) -> dict[str, str]:
            out = headers_for(path, section)
            if "Content-Security-Policy" in out:
                out["Content-Security-Policy"] = local_csp(out["Content-Security-Policy"], spec)
            out.pop("Strict-Transport-Security", None)  # plain HTTP on loopback
            return out

        def _json(self, status: int, data: Any) -> None:
            self._reply(status, {"Content-Type": "application/json",
                                 "Cache-Control": "no-store"}, json.dumps(data).encode())

        # --- methods -------------------------------------------------------------------
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._dispatch()

        def do_HEAD(self) -> None:  # noqa: N802
            self._dispatch()

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch()

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch()

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch()

        def do_PATCH(self) -> None:  # noqa: N802
            self._dispatch()

        def do_OPTIONS(self) -> None:  # noqa: N802
            self._dispatch()

        def _dispatch(self) -> None:
            path = urllib.parse.unquote(self.path.split("?", 1)[0])
            try:
                if path == "/__/firebase/init.json":
                    return self._json(200, spec.client_config())
                if path == "/__/analytics":
                    return self._analytics()
                if path.startswith(AUTH_PREFIXES):
                    return self._auth()
                # Hosting serves an existing file before any rewrite.
                if self.command in ("GET", "HEAD") and self._static(path):
                    return None
                for rewrite in section.get("rewrites", []):
                    if not match_source(rewrite["source"], path):
                        continue
                    if "function" in rewrite:
                        fn = rewrite["function"]
                        fn_id = fn["functionId"] if isinstance(fn, dict) else fn
                        return self._proxy(spec.function_urls[names[fn_id]])
                    if self._static(rewrite["destination"], fallback=True):
                        return None
                    break
                self._reply(404, {"Content-Type": "text/plain"}, b"not found")
            except (ConnectionError, OSError) as err:
                self._json(502, {"error": "bad_gateway", "message": type(err).__name__})
            except ValueError:
                self._json(413, {"error": "too_large", "message": "request body too large"})
            return None

        def _static(self, path: str, fallback: bool = False) -> bool:
            if self.command not in ("GET", "HEAD"):
                if fallback:
                    self._reply(405, {"Content-Type": "text/plain"}, b"method not allowed")
                    return True
                return False
            rel = posixpath.normpath(path).lstrip("/")
            target = (root / rel).resolve() if rel not in ("", ".") else root / "index.html"
            if target.is_dir():
                target = target / "index.html"
            if root not in target.parents and target != root or not target.is_file():
                return False
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
                ctype += "; charset=utf-8"
            served = "/" + target.relative_to(root).as_posix()
            self._reply(200, {"Content-Type": ctype}, target.read_bytes(), path=served)
            return True

        def _proxy(self, base: str) -> None:
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            forwarded = self.headers.get("X-Forwarded-For")
            peer = self.client_address[0]
            headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
            # Hosting names the site as it was reached; a client that sends Host without
            # the port (dicomweb-client does) reached it on this server's port.
            host = self.headers.get("Host", "") or f"127.0.0.1:{spec.port}"
            if ":" not in host.rsplit("]", 1)[-1]:
                host = f"{host}:{spec.port}"
            headers["X-Forwarded-Host"] = host
            status, out, data = _send(base, self.command, self.path, body, headers)
            self._reply(status, out, data)

        def _auth(self) -> None:
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            status, out, data = bridge.forward(self.command, self.path, body, headers)
            self._reply(status, out, data)

        def _analytics(self) -> None:
            if self.command == "POST":
                try:
                    event = json.loads(self._body() or b"{}")
                except ValueError:
                    return self._json(400, {"error": "bad_json"})
                with lock:
                    analytics.append(event if isinstance(event, dict) else {"value": event})
                    del analytics[:-1000]
                return self._reply(204, {}, b"")
            if self.command == "DELETE":
                with lock:
                    analytics.clear()
                return self._reply(204, {}, b"")
            with lock:
                return self._json(200, {"events": list(analytics)})

    return Handler


def serve(spec: HostingSpec) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", spec.port), make_handler(spec))
    server.daemon_threads = True
    return server


def spec_for(project: str, port: int, function_urls: dict[str, str], emulator_env: dict[str, str],
             **kwargs: Any) -> HostingSpec:
    """A spec from a stack's function URLs and the emulator layer's variables."""
    return HostingSpec(project=project, port=port, function_urls=function_urls,
                       auth_host=emulator_env["FIREBASE_AUTH_EMULATOR_HOST"],
                       firestore_host=emulator_env["FIRESTORE_EMULATOR_HOST"],
                       storage_url=emulator_env["STORAGE_EMULATOR_HOST"], **kwargs)


def argv(spec: HostingSpec) -> list[str]:
    """The command line that runs a hosting server for ``spec`` (for ``procs.spawn``)."""
    from dataclasses import asdict

    return [sys.executable, "-m", "localcloud.hosting", "--spec", json.dumps(asdict(spec))]


def start(cfg: Any, emulator_env: dict[str, str], state_dir: Path, port: int | None = None,
          **kwargs: Any) -> Any:
    """Start the hosting server of a stack (``cfg``: a ``stack.StackConfig``) and wait until
    it answers; ``make dev`` uses the hosting port of ``firebase.json``."""
    from localcloud import procs

    port = port or config.emulator_ports().hosting
    spec = spec_for(cfg.project, port, cfg.function_urls(), emulator_env, **kwargs)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env.update(PYTHONPATH=str(config.ROOT), PYTHONUNBUFFERED="1")
    child = procs.spawn(f"{cfg.project}.hosting", argv(spec), env, state_dir / "logs", cwd=config.ROOT)
    procs.wait_until(lambda: procs.http_answers(f"http://127.0.0.1:{port}/__/firebase/init.json"),
                     30, "hosting", child)
    return child


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.hosting")
    parser.add_argument("--spec", required=True, help="HostingSpec as JSON")
    args = parser.parse_args()
    spec = HostingSpec(**json.loads(args.spec))
    if not (Path(spec.root) / "index.html").is_file():
        print(f"hosting: {spec.root}/index.html is missing: run 'make web' first", file=sys.stderr)
    server = serve(spec)
    print(f"hosting: http://127.0.0.1:{spec.port} ({spec.project})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
