"""Study, series and instance documents as ``application/dicom+json`` (PS3.18 F.2).

The attribute sets are PS3.18's QIDO-RS defaults (tables 10.6.3-3 to 10.6.3-5) as far as
the index holds them: what a document does not hold is left out rather than invented.
``includefield`` adds what a level holds beyond its defaults (:data:`HELD`), or all of it.
Text is stored decoded, so every answer declares ``ISO_IR 192`` (UTF-8). Dates and times are
answered normalised (``YYYYMMDD``, ``HHMMSS``) when the file used a legacy form
(``1994.11.05``, ``11:20:00``); the documents keep the original.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pacs.indexing import search_keys

UTF8 = "ISO_IR 192"
MEDIA_TYPE = "application/dicom+json"

# keyword -> (tag, VR)
TAGS: dict[str, tuple[str, str]] = {
    "SpecificCharacterSet": ("00080005", "CS"),
    "SOPClassUID": ("00080016", "UI"),
    "SOPInstanceUID": ("00080018", "UI"),
    "StudyDate": ("00080020", "DA"),
    "SeriesDate": ("00080021", "DA"),  # known, not held: OHIF's series searches ask for them
    "StudyTime": ("00080030", "TM"),
    "SeriesTime": ("00080031", "TM"),
    "AccessionNumber": ("00080050", "SH"),
    "InstanceAvailability": ("00080056", "CS"),
    "Modality": ("00080060", "CS"),
    "ModalitiesInStudy": ("00080061", "CS"),
    "ReferringPhysicianName": ("00080090", "PN"),
    "StudyDescription": ("00081030", "LO"),
    "SeriesDescription": ("0008103E", "LO"),
    "RetrieveURL": ("00081190", "UR"),
    "PatientName": ("00100010", "PN"),
    "PatientID": ("00100020", "LO"),
    "PatientBirthDate": ("00100030", "DA"),
    "PatientSex": ("00100040", "CS"),
    "BodyPartExamined": ("00180015", "CS"),
    "StudyInstanceUID": ("0020000D", "UI"),
    "SeriesInstanceUID": ("0020000E", "UI"),
    "StudyID": ("00200010", "SH"),
    "SeriesNumber": ("00200011", "IS"),
    "InstanceNumber": ("00200013", "IS"),
    "ImagePositionPatient": ("00200032", "DS"),
    "ImageOrientationPatient": ("00200037", "DS"),
    "SliceLocation": ("00201041", "DS"),
    "NumberOfStudyRelatedSeries": ("00201206", "IS"),
    "NumberOfStudyRelatedInstances": ("00201208", "IS"),
    "NumberOfSeriesRelatedInstances": ("00201209", "IS"),
    "NumberOfFrames": ("00280008", "IS"),
    "Rows": ("00280010", "US"),
    "Columns": ("00280011", "US"),
}
KEYWORDS_BY_TAG = {tag: keyword for keyword, (tag, _) in TAGS.items()}

STUDY_ATTRIBUTES = ("SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber",
                    "InstanceAvailability", "ModalitiesInStudy", "ReferringPhysicianName",
                    "StudyDescription", "PatientName", "PatientID", "PatientBirthDate",
                    "PatientSex", "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries",
                    "NumberOfStudyRelatedInstances")
SERIES_ATTRIBUTES = ("SpecificCharacterSet", "Modality", "SeriesDescription", "BodyPartExamined",
                     "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber",
                     "NumberOfSeriesRelatedInstances")
INSTANCE_ATTRIBUTES = ("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID",
                       "InstanceAvailability", "StudyInstanceUID", "SeriesInstanceUID",
                       "InstanceNumber", "Rows", "Columns", "NumberOfFrames")
#: What each level's documents hold: its defaults, RetrieveURL, and the extras
#: ``includefield`` may ask for.
HELD = {
    "study": STUDY_ATTRIBUTES + ("RetrieveURL",),
    "series": SERIES_ATTRIBUTES + ("RetrieveURL",),
    "instance": INSTANCE_ATTRIBUTES + ("RetrieveURL", "ImagePositionPatient",
                                       "ImageOrientationPatient", "SliceLocation"),
}
DEFAULTS = {"study": STUDY_ATTRIBUTES + ("RetrieveURL",),
            "series": SERIES_ATTRIBUTES + ("RetrieveURL",),
            "instance": INSTANCE_ATTRIBUTES + ("RetrieveURL",)}


def keyword_of(key: str) -> str | None:
    """The keyword of a query key given as a keyword or as 8 hex digits, if we know it."""
    if key in TAGS:
        return key
    return KEYWORDS_BY_TAG.get(key.upper())


def _person_name(value: str) -> dict[str, str]:
    groups = value.split("=")
    out = {}
    for label, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        if group:
            out[label] = group
    return out


def element(keyword: str, value: Any) -> dict[str, Any]:
    """One DICOM JSON element; ``None``, empty text and empty lists have no ``Value``."""
    vr = TAGS[keyword][1]
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    values = [v for v in values if v is not None and v != ""]
    if not values:
        return {"vr": vr}
    if vr == "PN":
        values = [_person_name(str(v)) for v in values]
    elif vr in ("IS", "US"):
        values = [int(v) for v in values]
    elif vr == "DS":
        values = [float(v) for v in values]
    elif vr == "DA":
        values = [search_keys.normal_date(v) or str(v) for v in values]
    elif vr == "TM":
        values = [search_keys.normal_time(v) or str(v) for v in values]
    else:
        values = [str(v) for v in values]
    return {"vr": vr, "Value": values}


def dataset(keywords: Iterable[str], values: Mapping[str, Any]) -> dict[str, Any]:
    """A DICOM JSON object of ``keywords`` taken from ``values``, keyed by tag."""
    return {TAGS[k][0]: element(k, values.get(k)) for k in sorted(keywords,
                                                                 key=lambda k: TAGS[k][0])}


def wanted(level: str, include: Iterable[str] = (), include_all: bool = False
           ) -> tuple[str, ...]:
    """The keywords an answer at ``level`` holds: the defaults, plus what ``includefield``
    named that the level holds (every held attribute with ``all``)."""
    held = HELD[level]
    extra = held if include_all else tuple(k for k in include if k in held)
    return tuple(dict.fromkeys(DEFAULTS[level] + extra))


def study_values(doc: Mapping[str, Any], retrieve_url: str | None = None) -> dict[str, Any]:
    """The attribute values of a study document (with its settled counts)."""
    return {**doc, "SpecificCharacterSet": UTF8, "InstanceAvailability": "ONLINE",
            "ModalitiesInStudy": doc.get("modalities") or doc.get("ModalitiesInStudy"),
            "NumberOfStudyRelatedSeries": doc.get("series_count") or 0,
            "NumberOfStudyRelatedInstances": doc.get("instance_count") or 0,
            "RetrieveURL": retrieve_url}


def series_values(study_uid: str, doc: Mapping[str, Any],
                  retrieve_url: str | None = None) -> dict[str, Any]:
    """The attribute values of a series document."""
    return {**doc, "SpecificCharacterSet": UTF8, "StudyInstanceUID": study_uid,
            "NumberOfSeriesRelatedInstances": doc.get("instance_count") or 0,
            "RetrieveURL": retrieve_url}


def instance_values(study_uid: str, series_uid: str, doc: Mapping[str, Any],
                    retrieve_url: str | None = None) -> dict[str, Any]:
    """The attribute values of an instance document."""
    return {**doc, "SpecificCharacterSet": UTF8, "InstanceAvailability": "ONLINE",
            "StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
            "RetrieveURL": retrieve_url}


def answer(parts: Iterable[tuple[tuple[str, ...], Mapping[str, Any]]]) -> dict[str, Any]:
    """One DICOM JSON object from (keywords, values) of each level, lowest level last (its
    values win: a series' RetrieveURL over its study's). A RetrieveURL left unset is
    omitted."""
    keywords: dict[str, None] = {}
    values: dict[str, Any] = {}
    for names, vals in parts:
        keywords.update(dict.fromkeys(names))
        values.update({k: vals.get(k) for k in names})
    if not values.get("RetrieveURL"):
        keywords.pop("RetrieveURL", None)
    return dataset(keywords, values)


def study_json(doc: Mapping[str, Any], retrieve_url: str | None = None,
               keywords: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A study document (with its settled counts) in the QIDO-RS study attribute set."""
    return answer([(keywords or wanted("study"), study_values(doc, retrieve_url))])


def series_json(study_uid: str, doc: Mapping[str, Any], retrieve_url: str | None = None,
                keywords: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A series document in the QIDO-RS series attribute set."""
    return answer([(keywords or wanted("series"), series_values(study_uid, doc, retrieve_url))])


def instance_json(study_uid: str, series_uid: str, doc: Mapping[str, Any],
                  retrieve_url: str | None = None,
                  keywords: tuple[str, ...] | None = None) -> dict[str, Any]:
    """An instance document in the QIDO-RS instance attribute set (with its RetrieveURL when
    given)."""
    return answer([(keywords or wanted("instance"),
                    instance_values(study_uid, series_uid, doc, retrieve_url))])
