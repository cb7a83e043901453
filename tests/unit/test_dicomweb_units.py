"""DICOMweb pure parts: QIDO query checking, DICOM JSON rendering, WADO Accept matching.
(The searches themselves run against the emulators in
``tests/integration/test_dicomweb_qido.py``.)"""

from __future__ import annotations

import pytest
from pacs.dicomweb import attributes, matching, qido, wado
from pacs.errors import BadRequest
from pacs.indexing import search_keys

STUDY = (qido.STUDY_KEYS, attributes.STUDY_ATTRIBUTES)


def parse(**params):
    return qido.parse_query(list(params.items()), *STUDY)


def test_keys_by_keyword_or_tag_limits_and_universal_values():
    q = qido.parse_query([("00100020", "PID"), ("StudyDate", "2001-"), ("PatientName", ""),
                          ("AccessionNumber", "*"), ("limit", "5000"), ("offset", "3"),
                          ("includefield", "00100010,StudyID"), ("fuzzymatching", "false"),
                          ("StudyDescription", "**")], *STUDY)
    assert q.matches == {"PatientID": "PID", "StudyDate": "2001-"}
    assert (q.limit, q.offset, q.fuzzy) == (qido.MAX_LIMIT, 3, False)
    assert parse().limit == qido.DEFAULT_LIMIT
    assert parse(StudyInstanceUID="1.2\\1.3\\1.2").uids("StudyInstanceUID") == ("1.2", "1.3")


def test_includefield_tags_keywords_and_all():
    q = parse(includefield="00081190,ImagePositionPatient,Modality")
    assert q.include == ("RetrieveURL", "ImagePositionPatient", "Modality")
    # What the study level holds is added; Modality (a series attribute, as OHIF asks for
    # on a study search) and instance attributes are not study attributes.
    assert q.keywords("study") == attributes.wanted("study")
    assert "ImagePositionPatient" in q.keywords("instance")
    every = parse(includefield="all")
    assert every.include_all and set(every.keywords("instance")) == set(
        attributes.HELD["instance"])
    assert parse(fuzzymatching="TRUE").fuzzy


@pytest.mark.parametrize("params, code", [
    ({"Colour": "red"}, "unknown_query_key"),
    ({"Modality": "CT"}, "unsupported_query"),
    ({"SeriesDescription": "x"}, "unsupported_query"),
    ({"fuzzymatching": "maybe"}, "unsupported_query"),
    ({"includefield": "00081030,00180050"}, "unsupported_query"),
    ({"ModalitiesInStudy": "C*"}, "unsupported_wildcard"),
    ({"StudyDate": "2001*"}, "unsupported_wildcard"),
    ({"StudyInstanceUID": "1.2.*"}, "bad_value"),
    ({"StudyInstanceUID": "\\".join(["1.2"] * 101)}, "bad_value"),
    ({"PatientName": "x" * 129}, "bad_value"),
    ({"limit": "0"}, "bad_limit"),
    ({"limit": "ten"}, "bad_limit"),
    ({"offset": "-2"}, "bad_offset"),
])
def test_refusals_name_the_reason(params, code):
    with pytest.raises(BadRequest) as err:
        parse(**params)
    assert err.value.code == code and str(err.value)


@pytest.mark.parametrize("value, code", [
    ("2001-02-03-04", "bad_value"), ("20011301", "bad_value"), ("20020101-20010101",
                                                                "bad_date_range"),
    ("-", "bad_value"), ("1994.13.05", "bad_value")])
def test_bad_dates_are_refused(value, code):
    with pytest.raises(BadRequest) as err:
        qido.match_studies(parse(StudyDate=value))
    assert err.value.code == code


def test_repeated_key_is_refused():
    with pytest.raises(BadRequest):
        qido.parse_query([("PatientID", "a"), ("00100020", "b")], *STUDY)


@pytest.mark.parametrize("pattern, name, person, hit", [
    ("Doe^Peter", "DOE^peter", True, True),
    ("Doe^Peter", "Doe^Peter^^^", True, True),
    ("Doe", "Doe^Peter", True, False),
    ("*eter*", "Doe^Peter", True, True),
    ("*ETER", "Doe^Peter", True, True),
    ("D?e^P*", "Doe^Peter", True, True),
    ("D?e^P*", "Dooe^Peter", True, False),
    ("*muller*", "Müller^Jürgen", True, True),
    ("ドウ*", "Doe^Jane=ドウ^ジェーン", True, True),
    ("*head*", "CT, HEAD/BRAIN WO CONTRAST", False, True),
    ("brain", "Brain-MRA", False, False),
    ("brain*", "Brain-MRA", False, True),
    ("98?90234", "98890234", False, True),
    ("a.b", "axb", False, False),  # regex characters are literal
])
def test_text_matching(pattern, name, person, hit):
    assert matching.text_predicate(pattern, person_name=person)(name) is hit


@pytest.mark.parametrize("query, hit", [
    ("doe pet", True), ("Pe^Do", True), ("pet", True), ("peters", False), ("döé", True),
    ("arch", False)])
def test_fuzzy_is_a_prefix_per_name_component(query, hit):
    assert matching.fuzzy_predicate(query)("Doe^Peter") is hit


@pytest.mark.parametrize("query, stored, hit", [
    ("112000", "11:20:00", True), ("1120", "112000", True), ("1100-1130", "11:20:00", True),
    ("-11", "115959.5", True), ("-11", "120000", False), ("12-", "115959", False),
    ("0251-0300", "025109", True), ("14:04-", "14:04:38", True), ("", "", False)])
def test_time_ranges(query, stored, hit):
    if not query:
        with pytest.raises(BadRequest):
            matching.time_range("-")
        return
    assert matching.time_range(query).contains(matching.stored_time(stored)) is hit


def test_legacy_dates_and_times_are_normalised_in_the_search_keys():
    keys = search_keys.study_search_keys({"StudyDate": "1994.11.05", "StudyTime": "11:20:00"})
    assert (keys["date"], keys["time"], keys["sort"]) == ("19941105", "112000",
                                                          "19941105112000")
    assert search_keys.normal_time("14:04:38.123") == "140438.123"
    assert search_keys.normal_time("25") == "" and search_keys.normal_date("1994-11-05") == ""
    # The answer shows the normalised value; the document keeps the original.
    doc = {"StudyDate": "1994.11.05", "StudyTime": "11:20:00"}
    got = attributes.study_json(doc)
    assert got["00080020"]["Value"] == ["19941105"] and got["00080030"]["Value"] == ["112000"]
    assert doc["StudyDate"] == "1994.11.05"


def test_study_match_uses_the_index_where_it_can():
    def match(**params):
        return qido.match_studies(parse(**params))

    assert match(PatientName="Doe^Pe*").filters.name == ("doe", "pe")
    assert match(PatientName="*eter*").filters.name == ()
    assert match(PatientName="doe pe", fuzzymatching="true").filters.name == ("doe", "pe")
    assert match(PatientID="P-1").filters.patient_id == "p-1"
    assert match(PatientID="P*").filters.patient_id is None
    assert match(StudyDescription="Chest abd*").filters.keywords == ("chest",)
    assert match(StudyDescription="Chest pa").filters.keywords == ("chest", "pa")
    assert match(StudyDate="1994.11.05").filters.date_from == "19941105"
    assert match(ModalitiesInStudy="CT").filters.modality == "CT"
    assert qido.match_studies(parse(), also_modality="mr").filters.modality == "MR"


def test_dicom_json_elements():
    doc = {"PatientName": "Doe^Jane=ドウ^ジェーン", "PatientID": "P1", "StudyDate": None,
           "modalities": ["CT", "MR"], "series_count": 2, "instance_count": 7,
           "StudyInstanceUID": "1.2.3"}
    got = attributes.study_json(doc)
    assert got["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane",
                                                      "Ideographic": "ドウ^ジェーン"}]}
    assert got["00080020"] == {"vr": "DA"}
    assert got["00080061"] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert got["00201206"] == {"vr": "IS", "Value": [2]}
    assert got["00201208"] == {"vr": "IS", "Value": [7]}
    assert got["00080005"]["Value"] == ["ISO_IR 192"]
    assert "00081190" not in got  # no RetrieveURL without a base
    assert list(got) == sorted(got)
    series = attributes.series_json("1.2.3", {"SeriesNumber": 4, "instance_count": 3},
                                    "http://h/studies/1.2.3/series/4")
    assert series["0020000D"]["Value"] == ["1.2.3"] and series["00200011"]["Value"] == [4]
    assert series["00081190"] == {"vr": "UR", "Value": ["http://h/studies/1.2.3/series/4"]}
    inst = attributes.instance_json("1.2", "1.3", {"ImagePositionPatient": [1, 2.5, "3"]},
                                    keywords=attributes.HELD["instance"])
    assert inst["00200032"] == {"vr": "DS", "Value": [1.0, 2.5, 3.0]}


@pytest.mark.parametrize("accept, ok", [
    (None, True),
    ("*/*", True),
    ('multipart/related; type="application/dicom"', True),
    ('multipart/related; type="application/dicom"; transfer-syntax=*', True),
    ("multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1", True),
    ('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2', False),
    ("application/json", False),
    ('multipart/related; type="application/octet-stream"', False),
    ('application/json, multipart/related; type="application/dicom"', True),
    ("*/*; q=0", False),
])
def test_accept(accept, ok):
    if ok:
        assert wado.choose_form(accept, {"1.2.840.10008.1.2.1"}, zip_offered=False) == (
            "multipart/related")
    else:
        with pytest.raises(wado.NotAcceptable):
            wado.choose_form(accept, {"1.2.840.10008.1.2.1"}, zip_offered=False)


def test_qido_queries_have_their_indexes(client, spec):
    """The root searches' collection-group queries and the study scan (our search's query,
    projected and paged from a snapshot) are served by ``firestore.indexes.json``; without
    the two composite indexes added for them, the check fails."""
    from pacs.dicomweb import qido_root, study_match
    from pacs.studies.query import build_query

    from tests.index_shapes import problem, shape_of

    shapes = [shape_of(q) for q in qido_root.uid_queries(client, "uid-1")]
    for params in ({"PatientName": "*eter*"}, {"PatientName": "Doe^P*", "StudyDate": "20010101-"},
                   {"PatientID": "P1", "StudyDescription": "brain", "ModalitiesInStudy": "CT"}):
        match = qido.match_studies(parse(**params))
        scan = build_query(client, "uid-1", match.filters).select(study_match.READ_FIELDS)
        shapes.append(shape_of(scan.limit(study_match.PAGE)))
    assert [s for s in shapes if problem(spec, s)] == []
    for group in ("series", "instances"):
        without = {**spec, "indexes": [i for i in spec["indexes"] if not (
            i["collectionGroup"] == group and i.get("queryScope") == "COLLECTION_GROUP"
            and len(i["fields"]) == 2 and i["fields"][0]["fieldPath"] == "owner")]}
        assert any(problem(without, s) for s in shapes), group


def test_wildcards_take_bounded_time():
    import time

    started = time.perf_counter()
    hostile = "*a" * 60 + "*b"  # a backtracking regex would take ages on this
    assert not matching.text_predicate(hostile)("a" * 64)
    assert matching.glob_match("*a*a*b", "xxaxxaxxb") and not matching.glob_match("a?", "a")
    assert matching.glob_match("**", "") and not matching.glob_match("?", "")
    assert time.perf_counter() - started < 0.5
