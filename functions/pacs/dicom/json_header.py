"""An instance header as DICOM JSON (PS3.18 F.2) for WADO-RS ``/metadata``: pydicom's
``Dataset.to_json_dict`` of the bounded header parse, with bulk data replaced by
``BulkDataURI`` references.

Bulk data are the binary values (OB, OD, OF, OL, OV, OW, UN) longer than
:data:`BULK_THRESHOLD` bytes, at any depth, and the pixel data (never read by the header
parse). Each ``BulkDataURI`` is ``BASE`` followed by the element's path below the instance
(``bulkdata/7FE00010``, ``bulkdata/00540016/0/00181072``: tag, item index, tag...); the
caller replaces :data:`BASE` with the instance's URL when it serves the JSON, so stored JSON
holds no host name. :func:`element_at` resolves such a path in a dataset.
"""

from __future__ import annotations

import warnings
from typing import Any

from pacs.dicom import json_encoder
from pacs.dicom.fields import PIXEL_TAGS, as_int, element_value
from pacs.dicom.structure import NATIVE_TRANSFER_SYNTAXES

#: Binary values longer than this become a BulkDataURI (pydicom's default threshold).
BULK_THRESHOLD = 1024
#: Placeholder for the instance URL in stored JSON (replaced when served).
BASE = "%%INSTANCE%%/"
_MARK = "\x00bulk"


def dataset_json(ds: Any, header: Any) -> dict[str, Any]:
    """DICOM JSON of ``ds`` (read by :func:`pacs.dicom.header.read_header_dataset`, which
    gave ``header``): every element as ``to_json_dict`` writes it, bulk data as
    ``BulkDataURI``. Elements pydicom cannot encode (invalid values in hostile files) are
    left out. Encoded from the raw elements (:mod:`pacs.dicom.json_encoder`); equal to
    :func:`dataset_json_reference`, which it falls back to when pydicom raises on an
    element. pydicom's warnings (which can quote values) are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if json_encoder.usable():
            try:
                out = json_encoder.encode_dataset(ds, BULK_THRESHOLD, _bulk_uri)
            except Exception:  # noqa: BLE001 - pydicom's own encoding decides, below
                out = _pydicom_json(ds)
        else:
            out = _pydicom_json(ds)
        return _add_pixel_data(out, ds, header)


def dataset_json_reference(ds: Any, header: Any) -> dict[str, Any]:
    """:func:`dataset_json` through pydicom's ``Dataset.to_json_dict`` alone (the reference
    the tests compare the raw-element encoder with)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _add_pixel_data(_pydicom_json(ds), ds, header)


def _pydicom_json(ds: Any) -> dict[str, Any]:
    """pydicom's ``to_json_dict``; when it raises on an element (ValueError for a bad
    value, IndexError for a name list with an empty name, ...), again with the elements it
    cannot encode left out."""
    def handler(_elem: Any) -> str:
        return _MARK

    try:
        out = ds.to_json_dict(BULK_THRESHOLD, handler)
    except Exception:  # noqa: BLE001 - pydicom raises what its converters raise
        out = ds.to_json_dict(BULK_THRESHOLD, handler, suppress_invalid_tags=True)
    _resolve(out, "")
    return out


def _bulk_uri(path: str) -> str:
    return f"{BASE}bulkdata/{path}"


def _add_pixel_data(out: dict[str, Any], ds: Any, header: Any) -> dict[str, Any]:
    if header.pixel_data_offset is not None:
        tag = _pixel_tag(ds, header)
        out[tag] = {"vr": _pixel_vr(ds, header, tag), "BulkDataURI": f"{BASE}bulkdata/{tag}"}
    return out


def _resolve(node: dict[str, Any], path: str) -> None:
    """Replace every bulk mark below ``node`` by its path (tag/item/tag...)."""
    for tag, element in node.items():
        if not isinstance(element, dict):
            continue
        here = f"{path}{tag}"
        if element.get("BulkDataURI") == _MARK:
            element["BulkDataURI"] = f"{BASE}bulkdata/{here}"
        elif element.get("vr") == "SQ":
            for index, item in enumerate(element.get("Value") or []):
                if isinstance(item, dict):
                    _resolve(item, f"{here}/{index}/")


def _pixel_tag(ds: Any, header: Any) -> str:
    tag = header.pixel_data_tag
    return f"{tag:08X}" if tag in PIXEL_TAGS else "7FE00010"


def _pixel_vr(ds: Any, header: Any, tag: str) -> str:
    if header.pixel_data_vr:
        return str(header.pixel_data_vr)
    if tag == "7FE00008":
        return "OF"
    if tag == "7FE00009":
        return "OD"
    if header.transfer_syntax_uid not in NATIVE_TRANSFER_SYNTAXES:
        return "OB"
    return "OW" if (as_int(element_value(ds, "BitsAllocated")) or 0) > 8 else "OB"


def element_at(ds: Any, path: list[str]) -> Any:
    """The element a BulkDataURI path names (``["00540016", "0", "00181072"]``), or None."""
    current = ds
    for depth, part in enumerate(path):
        if depth % 2 == 0:
            try:
                tag = int(part, 16)
            except ValueError:
                return None
            if len(part) != 8 or tag not in current:
                return None
            element = current[tag]
            if depth == len(path) - 1:
                return element
            if element.VR != "SQ":
                return None
            current = element.value
        else:
            if not part.isdigit() or int(part) >= len(current):
                return None
            current = current[int(part)]
    return None
