"""DICOM JSON (PS3.18 F.2) of a pydicom dataset, encoded from its raw elements.

pydicom's ``Dataset.to_json_dict`` first converts every raw element to a ``DataElement``
(VR lookup, value objects such as ``DSfloat``, ``PersonName`` or ``UID``, validation that
only warns) and then writes each one out. :func:`encode_dataset` gives the same dict, in
the same key order and with the same value types (so ``json.dumps`` gives the same bytes),
at a fraction of the CPU by writing what pydicom would write straight from the raw bytes:

* text VRs in the default character set, and SH LO UC ST LT UT PN in a single-byte or
  UTF-8 character set (one Specific Character Set value, no escape sequence);
* PN as ``Alphabetic``/``Ideographic``/``Phonetic`` groups, as pydicom writes them;
* IS and DS values that are plain decimal numbers (``int``/``float`` of the text);
* US SS UL SL FL FD SV UV AT (``struct``), explicit and implicit VR, either byte order;
* binary VRs (OB OD OF OL OV OW, private UN): ``InlineBinary`` up to the bulk threshold
  pydicom applies, ``bulk_mark`` beyond it;
* sequences: pydicom parses the items (``ds[tag]``, as ``to_json_dict`` does), their raw
  elements are encoded here, recursively.

Everything else (another character set or an escape sequence, undecodable text, a number
text that is not plain, ambiguous VRs such as ``US or SS``, non-private UN, LUT
descriptors, deferred or undefined-length values, elements pydicom already converted) is
written by pydicom's own ``DataElement.to_json_dict`` of ``ds[tag]``, so it is equal by
construction. When pydicom raises on any element, the caller must use pydicom for the
whole dataset (its fallback drops elements and depends on conversion order):
:func:`encode_dataset` lets the exception through. :func:`usable` says whether pydicom's
configuration is the default one this module mirrors.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Callable
from typing import Any

from pydicom import config
from pydicom import hooks as pydicom_hooks
from pydicom.charset import ESC, custom_encoders, default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.hooks import hooks
from pydicom.tag import _LUT_DESCRIPTOR_TAGS

_UNDEFINED = 0xFFFFFFFF
_CHARSET_TAG = 0x00080005
#: Codecs whose values are decoded with a plain ``bytes.decode`` and re-encode to the same
#: bytes (pydicom's single-byte ISO_IR sets and UTF-8), as pydicom names them.
_SIMPLE_CODECS = frozenset({
    default_encoding, "latin_1", "iso8859_2", "iso8859_3", "iso8859_4", "iso_ir_126",
    "iso_ir_127", "iso_ir_138", "iso_ir_144", "iso_ir_148", "iso_ir_166", "UTF8",
}) - set(custom_encoders)
#: IS and DS texts whose value is ``int(text)`` / ``float(text)`` in pydicom without any
#: special case (ISfloat, int range, locale digits, underscores, nan/inf words).
_IS_TEXT = re.compile(r" *[+-]?[0-9]{1,15} *")
_DS_TEXT = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d",
                   "SV": "q", "UV": "Q"}
_NUMBER_SIZES = {vr: struct.calcsize("=" + fmt) for vr, fmt in _NUMBER_FORMATS.items()}
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
#: VRs that pydicom converts with the default character set (latin-1, never fails).
_PLAIN_TEXT = frozenset({"AS", "CS", "DA", "DT", "TM"})
_CHARSET_MULTI = frozenset({"SH", "LO", "UC"})
_CHARSET_SINGLE = frozenset({"ST", "LT", "UT"})
_CHARSET_VRS = _CHARSET_MULTI | _CHARSET_SINGLE | {"PN"}
_FAST_VRS = (_PLAIN_TEXT | _CHARSET_MULTI | _CHARSET_SINGLE | _BINARY | set(_NUMBER_FORMATS)
             | {"AE", "UI", "UR", "IS", "DS", "PN", "AT", "UN"})


def usable() -> bool:
    """True when pydicom runs with the defaults this encoder mirrors (value types, empty
    values, validation that warns, no custom conversion hooks)."""
    return (
        hooks.raw_element_vr is pydicom_hooks.raw_element_vr
        and hooks.raw_element_value is pydicom_hooks.raw_element_value
        and not hooks.raw_element_kwargs
        and config.data_element_callback is None
        and not config.datetime_conversion
        and not config.use_none_as_empty_text_VR_value
        and not config.use_DS_numpy and not config.use_IS_numpy
        and not config.use_DS_decimal
        and config.replace_un_with_known_vr
        and config.settings.reading_validation_mode != config.RAISE
    )


def encode_dataset(ds: Any, bulk_threshold: int, bulk_mark: str) -> dict[str, Any]:
    """``ds.to_json_dict(bulk_threshold, handler)`` where ``handler`` returns ``bulk_mark``
    for every bulk element; raises what pydicom raises for an element it cannot encode."""
    def handler(_elem: Any) -> str:
        return bulk_mark

    return _Encoder(bulk_threshold, bulk_mark, handler).dataset(ds)


class _Encoder:
    def __init__(self, bulk_threshold: int, bulk_mark: str,
                 handler: Callable[[Any], str]) -> None:
        self.threshold = bulk_threshold
        self.inline_max = (bulk_threshold // 4) * 3  # pydicom's test, on the raw length
        self.mark = bulk_mark
        self.handler = handler

    def dataset(self, ds: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        codec: list[str | None] = []  # the dataset's simple codec, once looked up
        for tag in list(ds._dict):
            elem = ds._dict[tag]
            encoded = None
            if type(elem) is RawDataElement:
                vr = elem.VR
                if vr is None or vr == "UN":
                    data: dict[str, Any] = {}
                    hooks.raw_element_vr(elem, data, encoding=None, ds=ds)
                    vr = data["VR"]
                if vr == "SQ":
                    encoded = self.sequence(ds[tag])
                elif vr not in _FAST_VRS or not _plain(elem):
                    pass
                elif vr not in _CHARSET_VRS:
                    encoded = self.raw(vr, elem, None)
                elif tag != _CHARSET_TAG:  # pydicom reads that one in the default set
                    if not codec:
                        codec.append(_simple_codec(ds))
                    if codec[0] is not None:
                        encoded = self.raw(vr, elem, codec[0])
            elif getattr(elem, "VR", None) == "SQ":
                encoded = self.sequence(elem)
            if encoded is None:
                encoded = ds[tag].to_json_dict(self.handler, self.threshold)
            out[f"{tag:08X}"] = encoded
        return out

    def sequence(self, elem: Any) -> dict[str, Any]:
        return {"vr": "SQ", "Value": [self.dataset(item) for item in elem.value]}

    def raw(self, vr: str, elem: RawDataElement, codec: str | None) -> dict[str, Any] | None:
        """The JSON of one raw element of a fast VR, or None to let pydicom write it."""
        if vr == "UN" and not elem.tag.is_private:
            return None  # pydicom may replace UN by the dictionary VR
        if elem.length == 0:
            return {"vr": vr}
        value: bytes = elem.value
        if vr in _BINARY or vr == "UN":
            if not value:
                return {"vr": vr}
            if len(value) > self.inline_max:
                return {"vr": vr, "BulkDataURI": self.mark}
            return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("utf-8")}
        if vr in _NUMBER_FORMATS:
            return _numbers(vr, value, elem.is_little_endian)
        if vr == "AT":
            return _tags(value, elem.is_little_endian)
        if vr in _PLAIN_TEXT:
            return _strings(vr, value.decode(default_encoding).rstrip(" \x00").split("\\"))
        if vr == "UI":
            items = value.decode(default_encoding).rstrip("\0 ").split("\\")
            return _strings(vr, [item.strip() for item in items])
        if vr == "IS":
            return _is(value.decode(default_encoding).rstrip(" \x00").split("\\"))
        if vr == "DS":
            return _ds(value.decode(default_encoding).strip().rstrip(" \x00").split("\\"))
        if vr == "AE":
            return _strings(vr, [s.strip() for s in value.decode(default_encoding).split("\\")])
        if vr == "UR":
            return _strings(vr, [value.decode(default_encoding).rstrip()])
        return _charset_text(vr, value, codec)


def _plain(elem: RawDataElement) -> bool:
    """A raw value read in full, of a defined length, outside pydicom's special cases."""
    return (type(elem.value) is bytes and elem.length != _UNDEFINED
            and not elem.is_buffered and elem.tag not in _LUT_DESCRIPTOR_TAGS)


def _simple_codec(ds: Any) -> str | None:
    """The dataset's one simple text codec, as pydicom resolves it, or None."""
    encodings = ds.original_character_set or ds._character_set
    if isinstance(encodings, str):
        encodings = [encodings]
    encodings = encodings or [default_encoding]
    if len(encodings) == 1 and encodings[0] in _SIMPLE_CODECS:
        return encodings[0]
    return None


def _strings(vr: str, items: list[str]) -> dict[str, Any]:
    if len(items) == 1:
        return {"vr": vr, "Value": items} if items[0] else {"vr": vr}
    return {"vr": vr, "Value": items}


def _charset_text(vr: str, value: bytes, codec: str | None) -> dict[str, Any] | None:
    if codec is None or ESC in value:
        return None
    if vr == "PN":
        value = value.rstrip(b"\x00 ")
    try:
        text = value.decode(codec)
    except UnicodeError:
        return None  # pydicom warns and decodes with replacement characters
    if vr in _CHARSET_SINGLE:
        return _strings(vr, [text.rstrip("\0 ")])
    if vr != "PN":
        return _strings(vr, [item.rstrip("\0 ") for item in text.split("\\")])
    names = []
    for item in text.split("\\"):
        groups = item.split("=")
        while groups and not groups[-1]:
            groups.pop()
        if not groups:
            names.append(None)
            continue
        name = {"Alphabetic": groups[0]}
        if len(groups) > 1:
            name["Ideographic"] = groups[1]
        if len(groups) > 2:
            name["Phonetic"] = groups[2]
        names.append(name)
    if len(names) == 1:
        return {"vr": vr, "Value": names} if names[0] else {"vr": vr}
    if None in names:
        return None  # pydicom raises on an empty name among several
    return {"vr": vr, "Value": names}


def _is(items: list[str]) -> dict[str, Any] | None:
    if len(items) == 1 and not items[0]:
        return {"vr": "IS"}
    if not all(_IS_TEXT.fullmatch(item) for item in items):
        return None
    return {"vr": "IS", "Value": [int(item) for item in items]}


def _ds(items: list[str]) -> dict[str, Any] | None:
    if len(items) == 1 and not items[0]:
        return {"vr": "DS"}
    if not all(_DS_TEXT.fullmatch(item) for item in items):
        return None
    return {"vr": "DS", "Value": [float(item) for item in items]}


def _numbers(vr: str, value: bytes, little: bool) -> dict[str, Any] | None:
    size = _NUMBER_SIZES[vr]
    if len(value) % size:
        return None  # pydicom raises (BytesLengthException)
    count = len(value) // size
    if not count:
        return {"vr": vr}
    numbers = struct.unpack(f"{'<' if little else '>'}{count}{_NUMBER_FORMATS[vr]}", value)
    return {"vr": vr, "Value": list(numbers)}


def _tags(value: bytes, little: bool) -> dict[str, Any] | None:
    if len(value) % 4:
        return None  # pydicom drops the odd bytes, and raises for 5 to 7 of them
    count = len(value) // 4
    halves = struct.unpack(f"{'<' if little else '>'}{2 * count}H", value)
    return {"vr": "AT", "Value": [f"{halves[i] << 16 | halves[i + 1]:08X}"
                                  for i in range(0, 2 * count, 2)]}
