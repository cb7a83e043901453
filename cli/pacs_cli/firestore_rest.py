"""Reading Firestore as the signed-in user, through the REST API: security rules decide
what the user sees (their own uploads, results and studies), exactly as in the web client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import requests

from pacs_cli import endpoints, session
from pacs_cli.errors import CliError


def _base() -> str:
    cfg = endpoints.local()
    if cfg:
        host, project = f"http://{cfg['env']['FIRESTORE_EMULATOR_HOST']}", cfg["project"]
    else:
        host, project = "https://firestore.googleapis.com", os.environ.get("PACS_PROJECT", "")
        if not project:
            raise CliError("set PACS_PROJECT to the Firebase project id", code="not_configured")
    return f"{host}/v1/projects/{project}/databases/(default)/documents"


def decode(value: dict[str, Any]) -> Any:
    """One Firestore REST ``Value`` to plain Python."""
    if "mapValue" in value:
        return {k: decode(v) for k, v in value["mapValue"].get("fields", {}).items()}
    if "arrayValue" in value:
        return [decode(v) for v in value["arrayValue"].get("values", [])]
    if "integerValue" in value:
        return int(value["integerValue"])
    if "nullValue" in value:
        return None
    for key in ("stringValue", "booleanValue", "doubleValue", "timestampValue",
                "referenceValue", "bytesValue"):
        if key in value:
            return value[key]
    return None


def _fields(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: decode(v) for k, v in doc.get("fields", {}).items()}
    out["id"] = doc["name"].rsplit("/", 1)[-1]
    return out


def _get(url: str, params: dict[str, Any] | None = None) -> requests.Response:
    token = session.id_token()
    return requests.get(url, params=params, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def get(path: str) -> dict[str, Any] | None:
    resp = _get(f"{_base()}/{path}")
    if resp.status_code in (403, 404):
        return None
    resp.raise_for_status()
    return _fields(resp.json())


def list_docs(path: str, page_size: int = 300) -> Iterator[dict[str, Any]]:
    """Every document of the collection ``path`` that the signed-in user owns, in pages.

    A list must be constrained by ``owner`` for the rules to allow it, so this runs a
    structured query (owner == uid, ordered by name) rather than a plain collection GET.
    """
    parent, _, collection = path.rpartition("/")
    url = f"{_base()}/{parent}:runQuery" if parent else f"{_base()}:runQuery"
    uid = session.current_uid()
    last = None
    while True:
        query: dict[str, Any] = {
            "from": [{"collectionId": collection}],
            "where": {"fieldFilter": {"field": {"fieldPath": "owner"}, "op": "EQUAL",
                                      "value": {"stringValue": uid}}},
            "orderBy": [{"field": {"fieldPath": "__name__"}, "direction": "ASCENDING"}],
            "limit": page_size,
        }
        if last:
            query["startAt"] = {"values": [{"referenceValue": last}], "before": False}
        token = session.id_token()
        resp = requests.post(url, json={"structuredQuery": query}, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
        if resp.status_code in (403, 404):
            return
        resp.raise_for_status()
        docs = [row["document"] for row in resp.json() if "document" in row]
        for doc in docs:
            yield _fields(doc)
        if len(docs) < page_size:
            return
        last = docs[-1]["name"]
