"""Study, series and instance documents as ``application/dicom+json`` (PS3.18 F.2).

The attribute sets are PS3.18's QIDO-RS defaults (tables 10.6.3-3 to 10.6.3-5) as far as
the index holds them: what a document does not hold is left out rather than invented.
Text is stored decoded, so every answer declares ``ISO_IR 192`` (UTF-8).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

UTF8 = "ISO_IR 192"
MEDIA_TYPE = "application/dicom+json"

# keyword -> (tag, VR)
TAGS: dict[str, tuple[str, str]] = {
    "SpecificCharacterSet": ("00080005", "CS"),
    "SOPClassUID": ("00080016", "UI"),
    "SOPInstanceUID": ("00080018", "UI"),
    "StudyDate": ("00080020", "DA"),
    "StudyTime": ("00080030", "TM"),
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
    else:
        values = [str(v) for v in values]
    return {"vr": vr, "Value": values}


def dataset(keywords: Iterable[str], values: Mapping[str, Any]) -> dict[str, Any]:
    """A DICOM JSON object of ``keywords`` taken from ``values``, keyed by tag."""
    return {TAGS[k][0]: element(k, values.get(k)) for k in sorted(keywords,
                                                                 key=lambda k: TAGS[k][0])}


def study_json(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A study document (with its settled counts) in the QIDO-RS study attribute set."""
    values = {**doc, "SpecificCharacterSet": UTF8, "InstanceAvailability": "ONLINE",
              "ModalitiesInStudy": doc.get("modalities") or doc.get("ModalitiesInStudy"),
              "NumberOfStudyRelatedSeries": doc.get("series_count") or 0,
              "NumberOfStudyRelatedInstances": doc.get("instance_count") or 0}
    return dataset(STUDY_ATTRIBUTES, values)


def series_json(study_uid: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A series document in the QIDO-RS series attribute set."""
    values = {**doc, "SpecificCharacterSet": UTF8, "StudyInstanceUID": study_uid,
              "NumberOfSeriesRelatedInstances": doc.get("instance_count") or 0}
    return dataset(SERIES_ATTRIBUTES, values)


def instance_json(study_uid: str, series_uid: str, doc: Mapping[str, Any],
                  retrieve_url: str | None = None) -> dict[str, Any]:
    """An instance document in the QIDO-RS instance attribute set (with its RetrieveURL when
    given)."""
    values = {**doc, "SpecificCharacterSet": UTF8, "InstanceAvailability": "ONLINE",
              "StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
              "RetrieveURL": retrieve_url}
    keywords = INSTANCE_ATTRIBUTES + (("RetrieveURL",) if retrieve_url else ())
    return dataset(keywords, values)
