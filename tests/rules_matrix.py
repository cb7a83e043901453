"""The rules matrix: Firestore security rules checked the way a web client meets them.

Every request goes through the emulator's REST API with a caller's ID token, or none for
``ANONYMOUS``, so the rules apply (the admin client bypasses them). A caller is a
:class:`~tests.localcloud_fixture.User` or ``ANONYMOUS``. The checks say which callers are
allowed (200) and which are denied (403): reads of one document, owner-filtered queries,
and writes (PATCH, POST, DELETE), which the rules refuse to every client.

The rules tests of every collection (ingest, links, privacy, deletions, the default deny)
use these, so a change of how clients reach Firestore is made here once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import requests

from tests.localcloud_fixture import LocalCloud, User

ANONYMOUS = None
ALLOWED, DENIED = 200, 403

Caller = User | None


def token_of(caller: Caller) -> str | None:
    return caller.id_token if caller else None


def who(caller: Caller) -> str:
    return caller.email if caller else "anonymous"


def document_url(cloud: LocalCloud, path: str) -> str:
    return (f"http://{cloud.env['FIRESTORE_EMULATOR_HOST']}/v1/projects/{cloud.project}"
            f"/databases/(default)/documents/{path}")


def write(cloud: LocalCloud, method: str, path: str, caller: Caller,
          fields: dict[str, Any] | None = None) -> requests.Response:
    """A client write: PATCH a document, POST into a collection, DELETE a document."""
    token = token_of(caller)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"fields": fields} if fields is not None else None
    return requests.request(method, document_url(cloud, path), json=body, headers=headers,
                            timeout=10)


def owner_query(collection: str, uid: str, all_descendants: bool = False) -> dict[str, Any]:
    """A structured query for one owner's documents of a collection (group)."""
    return {"from": [{"collectionId": collection, "allDescendants": all_descendants}],
            "where": {"fieldFilter": {"field": {"fieldPath": "owner"}, "op": "EQUAL",
                                      "value": {"stringValue": uid}}}}


def unfiltered_query(collection: str) -> dict[str, Any]:
    return {"from": [{"collectionId": collection}]}


def documents(resp: requests.Response) -> list[dict[str, Any]]:
    """The documents of a runQuery answer (its rows without a document are left out)."""
    return [row["document"] for row in resp.json() if "document" in row]


# --- Checks ------------------------------------------------------------------------------

def assert_reads(cloud: LocalCloud, path: str, *, allowed: Iterable[Caller] = (),
                 denied: Iterable[Caller] = ()) -> None:
    """GET of one document: 200 for each allowed caller, 403 for each denied one."""
    for callers, status in ((allowed, ALLOWED), (denied, DENIED)):
        for caller in callers:
            resp = cloud.firestore_rest(path, token_of(caller))
            assert resp.status_code == status, f"read {path} as {who(caller)}: {resp.text}"


def assert_owner_reads_only(cloud: LocalCloud, path: str, owner: User, other: User) -> None:
    """The owner reads the document; another user and an anonymous caller do not."""
    assert_reads(cloud, path, allowed=(owner,), denied=(ANONYMOUS, other))


def assert_queries(cloud: LocalCloud, structured: dict[str, Any], *,
                   allowed: Iterable[Caller] = (), denied: Iterable[Caller] = (),
                   parent: str = "") -> list[dict[str, Any]]:
    """A structured query: answered for each allowed caller, refused for each denied one.
    Returns the documents of the last allowed caller's answer."""
    found: list[dict[str, Any]] = []
    for caller in allowed:
        resp = cloud.firestore_query(parent, structured, token_of(caller))
        assert resp.status_code == ALLOWED, f"query as {who(caller)}: {resp.text}"
        found = documents(resp)
    for caller in denied:
        resp = cloud.firestore_query(parent, structured, token_of(caller))
        assert resp.status_code == DENIED, f"query as {who(caller)}: {resp.text}"
    return found


def assert_writes_denied(cloud: LocalCloud, path: str, callers: Iterable[Caller],
                         fields: dict[str, Any], *, create_in: str | None = None) -> None:
    """No caller may PATCH or DELETE the document (nor POST into ``create_in``)."""
    for caller in callers:
        resp = write(cloud, "PATCH", path, caller, fields)
        assert resp.status_code == DENIED, f"PATCH {path} as {who(caller)}"
        if create_in is not None:
            resp = write(cloud, "POST", create_in, caller, fields)
            assert resp.status_code == DENIED, f"POST {create_in} as {who(caller)}"
        resp = write(cloud, "DELETE", path, caller)
        assert resp.status_code == DENIED, f"DELETE {path} as {who(caller)}"


# --- Seeding -----------------------------------------------------------------------------

@dataclass
class Matrix:
    """Two users and documents of the owner's at every path of a table of templates."""

    cloud: LocalCloud
    owner: User
    other: User
    values: dict[str, str]

    def path(self, template: str) -> str:
        return template.format(**self.values)

    @property
    def callers(self) -> tuple[Caller, ...]:
        return (ANONYMOUS, self.other, self.owner)


def seed_matrix(cloud: LocalCloud, templates: Iterable[str], keys: Iterable[str]) -> Matrix:
    """An owner and another user; each template (``{uid}`` is the owner's uid, every other
    key a fresh random id) filled in and written with the admin client as the owner's."""
    owner, other = cloud.create_user(), cloud.create_user()
    values = {"uid": owner.uid, **{key: uuid.uuid4().hex for key in keys}}
    matrix = Matrix(cloud, owner, other, values)
    fs = cloud.clients().firestore
    for template in templates:
        fs.document(matrix.path(template)).set({"owner": owner.uid, "marker": "x"})
    return matrix


def assert_closed_to_clients(cloud: LocalCloud, path: str, owner: User, other: User,
                             collection: str) -> None:
    """A document no client may touch, its owner included: no read, no owner-filtered
    query, no write (server-only data such as share recipients' full IP addresses)."""
    assert_reads(cloud, path, denied=(owner, other, ANONYMOUS))
    assert_queries(cloud, owner_query(collection, owner.uid), denied=(owner, other, ANONYMOUS))
    assert_writes_denied(cloud, path, (ANONYMOUS, other, owner),
                         {"owner": {"stringValue": owner.uid}}, create_in=collection)
