"""Access history: one append-only record per manifest minted, per page of a series' URLs,
per share created, used or revoked, and per share expired (written by the ``expire_links``
retention job, :mod:`pacs.retention.links`).

Records live in ``access/{auto-id}``. The functions only ever ``add`` them; the rules let the
owner read their own and let no client write. A record names who (the owner's uid, or the
share id), which study, when, and the client IP and user agent, the server-log fields the
privacy policy lists. It is written before any URL is returned, so a URL never leaves without
its record.

Someone who opens a share is not the owner: their IP address and user agent are theirs, so
the owner's record of it holds only a coarse place (the IP truncated to its /24 or /48
network, :func:`coarse_ip`) and the browser family (:func:`browser_family`). The full values
go to ``access_clients/{record id}`` in the same batch, a collection no client may read (no
rule names it); it expires with the records (``purge_logs``), goes with an erasure and is not
in the owner's export (:mod:`pacs.privacy.personal_data`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pacs.errors import BadRequest

COLLECTION = "access"
# Full IP address and user agent of a share recipient's access (same id as the record).
CLIENTS = "access_clients"
IPV4_PREFIX, IPV6_PREFIX = 24, 48
# Browser families, most specific first (Edge and Opera say "Chrome", Chrome says "Safari").
_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Chromium/", "Chrome"), ("Safari/", "Safari"),
             ("curl/", "curl"))
KINDS = ("manifest", "series_urls", "share_created", "share_used", "share_revoked",
         "share_expired")
# Use of a lasting credential through DICOMweb: one record per credential and day, with a
# count and the last use (:func:`daily_write`), not one per request.
DAILY_KINDS = ("api_key_used", "share_dicomweb")
USER_AGENT_MAX = 256
PAGE_MAX = 200
_DOC_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")


@dataclass(frozen=True)
class ClientInfo:
    """Who is on the other end of a request, as far as the network tells.

    Attributes
    ----------
    ip : str or None
        Client IP (see :func:`client_info` for how proxies are trusted).
    user_agent : str or None
        ``User-Agent``, truncated.
    """

    ip: str | None
    user_agent: str | None


def client_info(headers: Mapping[str, str], remote_addr: str | None,
                forwarded_hops: int) -> ClientInfo:
    """The client IP and user agent of a request.

    Google's front ends append the address they saw to ``X-Forwarded-For``; entries before
    that are whatever the client sent. With ``forwarded_hops`` trusted proxies in front, the
    client is the entry that many places from the end (the peer address counts as the last
    entry); with none, it is the peer address.

    Parameters
    ----------
    headers : mapping
    remote_addr : str or None
        The TCP peer.
    forwarded_hops : int
        Number of trusted proxies that append to ``X-Forwarded-For``.

    Returns
    -------
    ClientInfo
    """
    forwarded = headers.get("X-Forwarded-For") or headers.get("x-forwarded-for") or ""
    route = [part.strip() for part in forwarded.split(",") if part.strip()]
    route.append(remote_addr or "")
    index = max(len(route) - 1 - max(forwarded_hops, 0), 0)
    ip = route[index][:64] or None
    agent = headers.get("User-Agent") or headers.get("user-agent")
    return ClientInfo(ip, agent[:USER_AGENT_MAX] if agent else None)


def coarse_ip(ip: str | None) -> str | None:
    """The network of ``ip``: ``a.b.c.0/24`` (IPv4, also IPv4-mapped IPv6) or its /48
    (IPv6); None when absent or not an address."""
    try:
        address = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    bits = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def browser_family(user_agent: str | None) -> str | None:
    """The browser family a ``User-Agent`` names (``Firefox``, ``Chrome``...), ``Other``
    for anything else, None when absent."""
    if not user_agent:
        return None
    return next((name for token, name in _BROWSERS if token in user_agent), "Other")


def record(firestore: Any, *, owner: str, study_key: str, kind: str, actor: str,
           actor_type: str, client: ClientInfo, at: datetime,
           details: Mapping[str, Any] | None = None) -> str:
    """Append one access record; return its id.

    Parameters
    ----------
    firestore : google.cloud.firestore.Client
    owner : str
        The uid whose data was reached (the reader of the record).
    study_key : str
    kind : str
        One of :data:`KINDS`.
    actor : str
        The owner's uid, or the share id.
    actor_type : str
        ``owner`` or ``share``.
    client : ClientInfo
    at : datetime
    details : mapping, optional
        Ids and counts only (share id, series id, number of URLs, expiry).

    Returns
    -------
    str
    """
    if kind not in KINDS:
        raise ValueError(f"unknown access kind {kind!r}")
    doc = {"owner": owner, "study_key": study_key, "kind": kind, "actor": actor,
           "actor_type": actor_type, "at": at, **(details or {})}
    if actor_type != "share":
        _, ref = firestore.collection(COLLECTION).add(
            {**doc, "ip": client.ip, "user_agent": client.user_agent})
        return ref.id
    # A share recipient: the owner's record is coarse, the full values readable by no client.
    ref = firestore.collection(COLLECTION).document()
    batch = firestore.batch()
    batch.set(ref, {**doc, "ip_prefix": coarse_ip(client.ip),
                    "browser": browser_family(client.user_agent)})
    batch.set(firestore.collection(CLIENTS).document(ref.id), {
        "owner": owner, "at": at, "kind": kind, "ip": client.ip,
        "user_agent": client.user_agent})
    batch.commit()
    return ref.id


def daily_id(prefix: str, credential_id: str, at: datetime) -> str:
    """The id of a credential's record of one (UTC) day: ``{prefix}{id}{YYYYMMDD}``."""
    return f"{prefix}{credential_id}{at.strftime('%Y%m%d')}"


def daily_write(transaction: Any, firestore: Any, *, record_id: str, owner: str,
                study_key: str | None, kind: str, actor: str, actor_type: str,
                client: ClientInfo, at: datetime) -> None:
    """Count one use in the credential's record of the day, in ``transaction`` (created on
    the first use of the day; ``at``, IP and user agent are the last use's)."""
    from google.cloud import firestore as gfs

    if kind not in DAILY_KINDS:
        raise ValueError(f"unknown daily access kind {kind!r}")
    doc = {"owner": owner, "study_key": study_key, "kind": kind, "actor": actor,
           "actor_type": actor_type, "day": at.strftime("%Y-%m-%d"), "at": at,
           "count": gfs.Increment(1)}
    if actor_type == "share":  # a recipient: coarse for the owner, full values server-only
        doc |= {"ip_prefix": coarse_ip(client.ip), "browser": browser_family(client.user_agent)}
        transaction.set(firestore.collection(CLIENTS).document(record_id), {
            "owner": owner, "at": at, "kind": kind, "ip": client.ip,
            "user_agent": client.user_agent}, merge=True)
    else:
        doc |= {"ip": client.ip, "user_agent": client.user_agent}
    transaction.set(firestore.collection(COLLECTION).document(record_id), doc, merge=True)


def _public(snap: Any) -> dict[str, Any]:
    from pacs.links.signing import iso

    doc = snap.to_dict() or {}
    out = {"id": snap.id}
    for key, value in doc.items():
        if key == "owner":
            continue
        out[key] = iso(value) if isinstance(value, datetime) else value
    out["study_id"] = out.pop("study_key", None)
    return out


def list_records(firestore: Any, uid: str, limit: int = 50,
                 page_token: str | None = None) -> dict[str, Any]:
    """The owner's access records, newest first, a page at a time.

    Parameters
    ----------
    firestore : google.cloud.firestore.Client
    uid : str
    limit : int, optional
        Page size, 1 to :data:`PAGE_MAX`.
    page_token : str, optional
        ``next_page_token`` of the previous page.

    Returns
    -------
    dict
        ``records`` and ``next_page_token`` (``None`` on the last page).
    """
    if not isinstance(limit, int) or not 1 <= limit <= PAGE_MAX:
        raise BadRequest(f"limit must be 1 to {PAGE_MAX}", code="bad_limit")
    query = list_query(firestore, uid, limit)
    if page_token:
        if not _DOC_ID.match(page_token):
            raise BadRequest("bad page token", code="bad_page_token")
        cursor = firestore.collection(COLLECTION).document(page_token).get()
        if not cursor.exists or (cursor.to_dict() or {}).get("owner") != uid:
            raise BadRequest("bad page token", code="bad_page_token")
        query = query.start_after(cursor)
    snaps = list(query.stream())
    records = [_public(s) for s in snaps]
    next_token = snaps[-1].id if len(snaps) == limit else None
    return {"records": records, "next_page_token": next_token}


def list_query(firestore: Any, uid: str, limit: int) -> Any:
    """The query of an owner's records, newest first (index: owner, at descending)."""
    from google.cloud import firestore as fs
    from google.cloud.firestore_v1.base_query import FieldFilter

    return (firestore.collection(COLLECTION).where(filter=FieldFilter("owner", "==", uid))
            .order_by("at", direction=fs.Query.DESCENDING).limit(limit))
