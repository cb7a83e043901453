"""Pure pieces of the search: the key layout, filter parsing, the indexed term, cursors."""

from __future__ import annotations

import pytest
from pacs.errors import BadRequest
from pacs.indexing import search_keys
from pacs.studies import query as search_query
from pacs.studies import search
from pacs.studies.filters import Filters


def test_terms_hold_singles_and_pairs_but_no_triples():
    keys = search_keys.study_search_keys(
        {"PatientName": "Müller^Jürgen", "StudyDescription": "CT Chest w/o contrast",
         "StudyDate": "20240131", "StudyTime": "101500"}, ["CT", "sr"])
    terms = set(keys["terms"])
    assert {"n:m", "n:mul", "n:muller", "n:jurg", "m:CT", "m:SR", "w:chest", "w:ct"} <= terms
    assert {"n:mul|m:CT", "n:jur|w:chest", "m:SR|w:contrast"} <= terms
    assert "w:w" not in terms and "w:o" not in terms  # single letters are not words
    assert not any(t.count("|") > 1 for t in terms)
    assert keys["sort"] == "20240131101500" and keys["date"] == "20240131"
    assert keys["modalities"] == ["CT", "SR"]


def test_with_modalities_recomputes_the_terms():
    keys = search_keys.study_search_keys({"PatientName": "Doe^Jane", "StudyDescription": "Head"})
    assert "m:MR" not in keys["terms"]
    updated = search_keys.with_modalities(keys, ["MR"])
    assert {"m:MR", "n:do|m:MR", "m:MR|w:head"} <= set(updated["terms"])
    assert updated["name_tokens"] == keys["name_tokens"]


def test_separators_cannot_forge_a_pair():
    keys = search_keys.study_search_keys({"PatientName": "a|w:chest"})
    assert "n:a|w:chest" not in keys["terms"]
    assert keys["name_tokens"] == ["a", "chest", "w"]


@pytest.mark.parametrize("typed", ["mul", "MUL", "Mül", "jur", "JUR", "jürg", "JÜRGEN"])
def test_name_prefix_is_case_and_accent_insensitive(typed):
    keys = search_keys.study_search_keys({"PatientName": "Müller^Jürgen^^Dr."})
    f = Filters.parse({"name": typed})
    assert f.index_term() in keys["terms"]
    assert f.matches(keys)


def test_several_name_words_all_must_match():
    keys = search_keys.study_search_keys({"PatientName": "Müller^Jürgen"})
    assert Filters.parse({"name": "müller jür"}).matches(keys)
    assert Filters.parse({"name": "Muller^Jurgen"}).matches(keys)
    assert not Filters.parse({"name": "müller anna"}).matches(keys)
    f = Filters.parse({"name": "jür müller"})
    assert f.index_term() == "n:muller" and f.needs_check


def test_index_term_combines_name_modality_keyword_in_order():
    assert Filters.parse({"modality": "ct"}).index_term() == "m:CT"
    assert Filters.parse({"modality": "CT", "keyword": "Chest"}).index_term() == "m:CT|w:chest"
    assert Filters.parse({"name": "smi", "modality": "MR"}).index_term() == "n:smi|m:MR"
    triple = Filters.parse({"name": "smi", "modality": "MR", "keyword": "head"})
    assert triple.index_term() == "n:smi|w:head" and triple.needs_check
    long_name = Filters.parse({"name": "abcdefghijklmnopqrstuvwxyz"})
    assert long_name.index_term() == "n:abcdefghijklmnop" and long_name.needs_check
    assert Filters.parse({"patient_id": "x"}).index_term() is None
    assert not Filters.parse({"name": "smi", "modality": "CT"}).needs_check


@pytest.mark.parametrize("raw,expected", [
    ({"date": "20240131"}, ("20240131", "20240131")),
    ({"date": "2024-01-31"}, ("20240131", "20240131")),
    ({"date": "20200101-20201231"}, ("20200101", "20201231")),
    ({"date": "20200101-"}, ("20200101", None)),
    ({"date": "-20201231"}, (None, "20201231")),
    ({"date_from": "2020-01-01"}, ("20200101", None)),
    ({"date_to": "20201231"}, (None, "20201231")),
])
def test_dates(raw, expected):
    f = Filters.parse(raw)
    assert (f.date_from, f.date_to) == expected


@pytest.mark.parametrize("raw,code", [
    ({"colour": "red"}, "unknown_filter"),
    ({"date": "20240231"}, "bad_date"),
    ({"date": "2024"}, "bad_date"),
    ({"date": "-"}, "bad_date"),
    ({"date": "20240101", "date_from": "20230101"}, "bad_date"),
    ({"date_from": "20240102", "date_to": "20240101"}, "bad_date_range"),
    ({"date_from": "yesterday"}, "bad_date_from"),
    ({"modality": "C T!"}, "bad_modality"),
    ({"name": "^^^"}, "bad_name"),
    ({"keyword": "a b"}, "bad_keyword"),
    ({"name": "x" * 200}, "bad_name"),
    ({"name": " ".join("abcdefghij")}, "too_many_words"),
    ({"patient_id": ["a"]}, "bad_patient_id"),
])
def test_bad_filters_are_refused_with_a_reason(raw, code):
    with pytest.raises(BadRequest) as err:
        Filters.parse(raw)
    assert err.value.code == code


def test_date_bounds_leave_out_studies_without_a_date():
    undated = search_keys.study_search_keys({"PatientName": "A^B"})
    dated = search_keys.study_search_keys({"StudyDate": "20200601"})
    before = Filters.parse({"date_to": "20201231"})
    assert before.matches(dated) and not before.matches(undated)
    assert Filters.parse({}).matches(undated)
    assert not Filters.parse({"date": "20200602"}).matches(dated)


def test_patient_id_and_accession_are_folded():
    keys = search_keys.study_search_keys({"PatientID": "Ab-12", "AccessionNumber": "ÄCC 7"})
    assert Filters.parse({"patient_id": "aB-12", "accession": "acc 7"}).matches(keys)
    assert not Filters.parse({"patient_id": "ab-1"}).matches(keys)


def test_cursor_round_trip_and_refusals():
    cursor = search_query.encode_cursor("20240131101500", "a" * 32)
    assert search_query.decode_cursor(cursor) == ("20240131101500", "a" * 32)
    for bad in ("", "not-base64!", search_query.encode_cursor("x", "a" * 32),
                search_query.encode_cursor("20240131", "../../x"), "e30", "MQ", "bnVsbA"):
        with pytest.raises(BadRequest) as err:
            search_query.decode_cursor(bad)
        assert err.value.code == "bad_cursor"


@pytest.mark.parametrize("raw,expected", [(None, 50), ("", 50), ("7", 7), (1000, 200)])
def test_limit_default_and_cap(raw, expected):
    assert search.parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "ten", True, 2.5j])
def test_bad_limits(raw):
    with pytest.raises(BadRequest):
        search.parse_limit(raw)


def test_studies_function_needs_no_dicom_or_pixel_packages():
    # The deployed studies function gets the base packages only (deploy/requirements.py).
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("import sys\n"
            "for name in ('pydicom', 'numpy', 'PIL'):\n"
            "    sys.modules[name] = None\n"
            "import pacs.studies.search, pacs.studies.deletion\n"
            "import pacs.indexing.search_keys, pacs.indexing.catalog\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=root / "functions",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
