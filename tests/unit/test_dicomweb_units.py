"""DICOMweb pure parts: QIDO query checking, DICOM JSON rendering, WADO Accept matching.
(The searches themselves run against the emulators in
``tests/integration/test_dicomweb_qido.py``.)"""

from __future__ import annotations

import pytest
from pacs.dicomweb import attributes, qido, wado
from pacs.errors import BadRequest

STUDY = (qido.STUDY_KEYS, attributes.STUDY_ATTRIBUTES)


def parse(**params):
    return qido.parse_query(list(params.items()), *STUDY)


def test_keys_by_keyword_or_tag_limits_and_universal_values():
    q = qido.parse_query([("00100020", "PID"), ("StudyDate", "2001-"), ("PatientName", ""),
                          ("AccessionNumber", "*"), ("limit", "5000"), ("offset", "3"),
                          ("includefield", "00100010,StudyID"), ("fuzzymatching", "false")],
                         *STUDY)
    assert q.matches == {"PatientID": "PID", "StudyDate": "2001-"}
    assert (q.limit, q.offset) == (qido.MAX_LIMIT, 3)
    assert parse().limit == qido.DEFAULT_LIMIT
    assert parse(StudyInstanceUID="1.2\\1.3\\1.2").uids("StudyInstanceUID") == ("1.2", "1.3")


@pytest.mark.parametrize("params, code", [
    ({"Colour": "red"}, "unknown_query_key"),
    ({"StudyTime": "1200"}, "unsupported_query"),
    ({"Modality": "CT"}, "unsupported_query"),
    ({"fuzzymatching": "true"}, "unsupported_query"),
    ({"includefield": "all"}, "unsupported_query"),
    ({"includefield": "00081030,SeriesDescription"}, "unsupported_query"),
    ({"PatientName": "*oe"}, "unsupported_wildcard"),
    ({"PatientName": "D?e*"}, "unsupported_wildcard"),
    ({"AccessionNumber": "12*"}, "unsupported_wildcard"),
    ({"StudyInstanceUID": "1.2.*"}, "bad_value"),
    ({"StudyInstanceUID": "\\".join(["1.2"] * 101)}, "bad_value"),
    ({"limit": "0"}, "bad_limit"),
    ({"limit": "ten"}, "bad_limit"),
    ({"offset": "-2"}, "bad_offset"),
])
def test_refusals_name_the_reason(params, code):
    with pytest.raises(BadRequest) as err:
        parse(**params)
    assert err.value.code == code and str(err.value)


def test_repeated_key_is_refused():
    with pytest.raises(BadRequest):
        qido.parse_query([("PatientID", "a"), ("00100020", "b")], *STUDY)


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
    assert list(got) == sorted(got)
    series = attributes.series_json("1.2.3", {"SeriesNumber": 4, "instance_count": 3})
    assert series["0020000D"]["Value"] == ["1.2.3"] and series["00200011"]["Value"] == [4]


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
    assert wado.acceptable(accept, "1.2.840.10008.1.2.1") is ok
