"""The Firestore query of a search, and cursors: positions in its order.

Query shape (see :mod:`pacs.indexing.search_keys` for the key layout): ``owner ==``, then
``search.patient_id ==`` and ``search.accession ==`` when given, then one
``search.terms array-contains`` built from the name, modality and keyword, then a range on
``search.sort`` for dates, ordered by ``search.sort`` and ``__name__``, both descending.
:func:`build_query` builds it; a web client builds the same one, and
``tests/unit/test_search_indexes.py`` checks every shape it can take against
``firestore.indexes.json``.

A cursor is the (``search.sort``, document id) of the last study of a page, opaque to the
client (:func:`encode_cursor`) and checked on the way back (:func:`decode_cursor`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from pacs.errors import BadRequest
from pacs.indexing import search_keys
from pacs.studies.filters import Filters, coerce_filters

COLLECTION = "studies"
#: A study document id.
STUDY_KEY = re.compile(r"^[0-9a-f]{32}$")
_CURSOR_SORT = re.compile(r"^\d{8}(\d{6})?$")


def build_query(firestore: Any, uid: str, filters: Filters | Mapping[str, Any] | None) -> Any:
    """The Firestore query of a search (without cursor, limit or projection).

    Parameters
    ----------
    firestore : google.cloud.firestore.Client
    uid : str
        The caller; the query is always constrained to ``owner == uid``.
    filters : Filters or mapping
        Parsed filters, or the raw mapping (see :meth:`Filters.parse`).

    Returns
    -------
    google.cloud.firestore_v1.query.Query
        Ordered by ``search.sort`` then ``__name__``, both descending.
    """
    from google.cloud.firestore_v1.base_query import BaseQuery, FieldFilter

    if not uid:
        raise ValueError("a search needs the caller's uid")
    f = coerce_filters(filters)
    query = firestore.collection(COLLECTION).where(filter=FieldFilter("owner", "==", uid))
    if f.patient_id is not None:
        query = query.where(filter=FieldFilter("search.patient_id", "==", f.patient_id))
    if f.accession is not None:
        query = query.where(filter=FieldFilter("search.accession", "==", f.accession))
    term = f.index_term()
    if term:
        query = query.where(filter=FieldFilter("search.terms", "array_contains", term))
    low, high = f.sort_bounds()
    if low is not None:
        op = ">" if low == search_keys.NO_DATE else ">="
        query = query.where(filter=FieldFilter("search.sort", op, low))
    if high is not None:
        query = query.where(filter=FieldFilter("search.sort", "<=", high))
    return (query.order_by("search.sort", direction=BaseQuery.DESCENDING)
            .order_by("__name__", direction=BaseQuery.DESCENDING))


def encode_cursor(sort: str, study_key: str) -> str:
    """An opaque cursor: the position (sort key, document id) of the last study returned."""
    raw = json.dumps([sort, study_key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (sort key, document id) of a cursor; BadRequest ``bad_cursor`` when malformed."""
    try:
        if not isinstance(cursor, str) or len(cursor) > 200:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort, key = json.loads(raw)
        if not (isinstance(sort, str) and _CURSOR_SORT.fullmatch(sort)
                and isinstance(key, str) and STUDY_KEY.fullmatch(key)):
            raise ValueError
    except (ValueError, TypeError):
        raise BadRequest("bad cursor: pass next_cursor of the previous page as is",
                         code="bad_cursor") from None
    return sort, key
