"""The service's base URL as the caller reached it: the root of every URL an answer holds
(QIDO RetrieveURLs, BulkDataURIs in metadata, STOW RetrieveURLs, download links).

- Through Firebase Hosting (``https://<site>/dicomweb``): Hosting names the site in
  ``X-Forwarded-Host`` and the scheme in ``X-Forwarded-Proto``; the local Hosting stand-in
  does the same, with its port (``localcloud/hosting.py``).
- Directly (the function's own URL): the ``Host`` header. Deployed, that is the
  ``cloudfunctions.net`` (or ``run.app``) host on the default port, and the port the
  process listens on (8080 behind Google's front end) is not the public one, so it is never
  added. dicomweb-client 0.61.2 sends ``Host`` without the port (its workaround for a
  requests issue), which names the wrong origin on a non-default port: a loopback host
  without a port (only a local run reaches us so) gets the port this process listens on,
  which is the one the client connected to.
"""

from __future__ import annotations

from collections.abc import Mapping

LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
DEFAULT_PORTS = {"http": "80", "https": "443"}


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def _has_port(host: str) -> bool:
    return ":" in host.rsplit("]", 1)[-1]


def service_base(headers: Mapping[str, str], scheme: str, host: str, server_port: str | None,
                 base_path: str = "", forwarded: bool = True) -> str:
    """``{scheme}://{host}{base_path}`` as the caller reached the service (see the module
    docstring). ``forwarded`` False: the function's own URL, ignoring what a proxy says
    (download links point past Hosting's 60 s cut)."""
    proto = (_first(headers.get("X-Forwarded-Proto")) if forwarded else "") or scheme
    via_proxy = _first(headers.get("X-Forwarded-Host")) if forwarded else ""
    name = via_proxy or host
    if (not via_proxy and not _has_port(name) and name.lower() in LOOPBACK and server_port
            and server_port != DEFAULT_PORTS.get(proto)):
        name = f"{name}:{server_port}"
    return f"{proto}://{name}{base_path}"
