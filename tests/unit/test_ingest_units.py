"""Pure pieces of ingest: object-name parsing, final status, keyed ids, search keys."""

import pytest
from pacs import ids, results
from pacs.errors import BadRequest
from pacs.indexing import search_keys
from pacs.ingest.pipeline import parse_upload_object
from pacs.ingest.uploads import UploadRequest


@pytest.mark.parametrize("name,expected", [
    ("uid123/abcdef", ("uid123", "abcdef")),
    ("uid123/abc/def", None),
    ("../etc/passwd", None),
    ("uid123/", None),
    ("uïd/abc", None),
])
def test_upload_object_names(name, expected):
    assert parse_upload_object(name) == expected


@pytest.mark.parametrize("counts,status", [
    ({"stored": 3}, "complete"),
    ({"stored": 1, "duplicate": 2, "skipped": 1}, "complete"),
    ({"duplicate": 2}, "complete"),
    ({"stored": 1, "rejected": 1}, "partial"),
    ({"stored": 1, "conflict": 1}, "partial"),
    ({"rejected": 2}, "failed"),
    ({"skipped": 1}, "failed"),
    ({}, "failed"),
])
def test_final_status(counts, status):
    assert results.final_status(counts) == status


def test_keyed_ids_separate_users_and_hide_uids():
    key = b"k"
    uid_a, uid_b, sop = "alice", "bob", "1.2.840.113619.2.55.3.604688119"
    a, b = ids.instance_key(key, uid_a, sop), ids.instance_key(key, uid_b, sop)
    assert a != b and len(a) == 32 and sop not in a
    assert ids.instance_key(b"other", uid_a, sop) != a
    assert ids.instance_object(uid_a, "s", a) == f"alice/s/{a}.dcm"


def test_name_tokens_fold_case_accents_and_components():
    assert search_keys.name_tokens("Müller^Jürgen^^Dr.") == ["dr", "jurgen", "muller"]
    assert "mul" in search_keys.prefixes(["muller"])
    assert search_keys.name_tokens(None) == []


def test_sortable_date():
    assert search_keys.sortable_date("20240131", "101500.123") == "20240131101500"
    assert search_keys.sortable_date("", None) == "00000000"


@pytest.mark.parametrize("body,code", [
    (None, "bad_request"),
    ({"filename": "", "size": 1, "content_type": "application/zip"}, "bad_filename"),
    ({"filename": "a", "size": True, "content_type": "application/zip"}, "bad_size"),
    ({"filename": "a", "size": -1, "content_type": "application/zip"}, "bad_size"),
    ({"filename": "a", "size": 1, "content_type": "text/html"}, "bad_content_type"),
])
def test_upload_request_validation(body, code):
    with pytest.raises(BadRequest) as err:
        UploadRequest.from_json(body)
    assert err.value.code == code
