"""What the hosted OHIF Viewer (3.13.2) sends to QIDO-RS is accepted: every series search of
its study loading asks ``includefield=00080021,00080031,0008103E,00200011`` (SeriesDate,
SeriesTime, SeriesDescription, SeriesNumber) — hard-coded in its DICOMweb data source, not
configurable — and its study searches ``includefield=00081030,00080060,00080090,00100030``.
Attributes a level does not hold are accepted and absent, as for Modality on studies."""

from __future__ import annotations

from pacs.dicomweb import attributes, qido

OHIF_SERIES = "00080021,00080031,0008103E,00200011"
OHIF_STUDIES = "00081030,00080060,00080090,00100030"


def test_ohif_series_search_is_accepted():
    query = qido.parse_query([("includefield", OHIF_SERIES)], qido.SERIES_KEYS,
                             attributes.HELD["series"])
    assert "SeriesDescription" in query.include and "SeriesNumber" in query.include
    assert {"SeriesDate", "SeriesTime"} <= set(query.include)


def test_ohif_study_search_is_accepted():
    qido.parse_query([("includefield", OHIF_STUDIES), ("fuzzymatching", "true"),
                      ("StudyInstanceUID", "1.2.3"), ("limit", "101"), ("offset", "0")],
                     qido.STUDY_KEYS, attributes.HELD["study"])
