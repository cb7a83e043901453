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
  pydicom applies, ``BulkDataURI`` beyond it (``bulk_uri`` of the element's path);
* sequences: pydicom parses the items (``ds[tag]``, as ``to_json_dict`` does), their raw
  elements are encoded here, recursively;
* elements pydicom already converted, when their value is of a plain type (``str``,
  ``UID``, ``IS``, ``DSfloat``, ``int``, ``float``, ``PersonName`` or several of one).

The VR of a raw element comes from pydicom's own lookup hook (implicit VR, private tags,
UN). Everything else (another character set or an escape sequence, undecodable text, a
number text that is not plain, ambiguous VRs such as ``US or SS``, LUT descriptors,
deferred or undefined-length values, odd lengths) is written by pydicom's own
``DataElement.to_json_dict`` of ``ds[tag]``, so it is equal by construction. When pydicom
raises on any element, the caller must use pydicom for the whole dataset (its fallback
drops elements and depends on conversion order): :func:`encode_dataset` lets the
exception through. :func:`usable` says whether pydicom's configuration is the default
one this module mirrors.
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
from pydicom.multival import MultiValue
from pydicom.tag import _LUT_DESCRIPTOR_TAGS
from pydicom.uid import UID
from pydicom.valuerep import IS, DSfloat, PersonName

_UNDEFINED = 0xFFFFFFFF
#: Specific Character Set (pydicom decodes it with the default set) and the LUT
#: descriptors (pydicom adjusts their first value): pydicom's own path.
_CHARSET_TAGS = frozenset({0x00080005})
_LUT_TAGS = frozenset(_LUT_DESCRIPTOR_TAGS)
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
_FLOAT_VRS = frozenset({"FL", "FD", "DS"})
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_CHARSET_SINGLE = frozenset({"ST", "LT", "UT"})
_CHARSET_VRS = frozenset({"SH", "LO", "UC", "PN"}) | _CHARSET_SINGLE
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI", "UR", "SH", "LO", "UC",
                       "ST", "LT", "UT"})
#: Value types of converted elements written here, by VR.
_CONVERTED_TYPES: dict[str, tuple[type, ...]] = {
    **{vr: (str, UID) for vr in _TEXT_VRS}, "PN": (PersonName,), "IS": (IS,),
    "DS": (DSfloat,), **{vr: (float,) if vr in _FLOAT_VRS else (int,)
                         for vr in _NUMBER_FORMATS},
}


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


def encode_dataset(ds: Any, bulk_threshold: int,
                   bulk_uri: Callable[[str], str]) -> dict[str, Any]:
    """``ds.to_json_dict(bulk_threshold, handler)`` where ``handler`` returns
    ``bulk_uri(path)`` for a bulk element at ``path`` (its tag, or tag/item/tag...:
    ``00540016/0/00181072``); raises what pydicom raises for an element it cannot encode."""
    return _Encoder(bulk_threshold, bulk_uri).dataset(ds, "")


class _Encoder:
    def __init__(self, bulk_threshold: int, bulk_uri: Callable[[str], str]) -> None:
        self.threshold = bulk_threshold
        self.inline_max = (bulk_threshold // 4) * 3  # pydicom's test, on the raw length
        self.bulk_uri = bulk_uri

    def dataset(self, ds: Any, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        codec: list[str | None] = []  # the dataset's simple codec, once looked up
        for tag, elem in list(ds._dict.items()):
            encoded = None
            key = f"{tag:08X}"
            if type(elem) is RawDataElement:
                _tag, vr, length, value, _tell, _implicit, little, _raw, buffered = elem
                if vr is None or vr == "UN":
                    found: dict[str, Any] = {}
                    hooks.raw_element_vr(elem, found, encoding=None, ds=ds)
                    vr = found["VR"]
                if vr == "SQ":
                    encoded = self.sequence(ds[tag], f"{path}{key}/")
                elif (type(value) is not bytes or length == _UNDEFINED or buffered
                      or tag in _LUT_TAGS):
                    pass  # deferred, undefined length, LUT descriptor
                elif vr in _RAW_TEXT:
                    encoded = _RAW_TEXT[vr](vr, value) if length else {"vr": vr}
                elif vr in _NUMBER_FORMATS:
                    encoded = _numbers(vr, value, little) if length else {"vr": vr}
                elif vr in _BINARY or (vr == "UN" and tag.is_private):
                    encoded = self.binary(vr, value, path + key) if length else {"vr": vr}
                elif vr in _CHARSET_VRS and tag not in _CHARSET_TAGS:
                    if not length:
                        encoded = {"vr": vr}
                    else:
                        if not codec:
                            codec.append(_simple_codec(ds))
                        encoded = _charset_text(vr, value, codec[0])
                elif vr == "AT":
                    encoded = _tags(value, little) if length else {"vr": vr}
            elif elem.VR == "SQ":
                encoded = self.sequence(elem, f"{path}{key}/")
            else:
                encoded = self.converted(elem)
            if encoded is None:
                uri = self.bulk_uri(path + key)
                encoded = ds[tag].to_json_dict(lambda _elem, uri=uri: uri, self.threshold)
            out[key] = encoded
        return out

    def sequence(self, elem: Any, prefix: str) -> dict[str, Any]:
        return {"vr": "SQ", "Value": [self.dataset(item, f"{prefix}{index}/")
                                      for index, item in enumerate(elem.value)]}

    def binary(self, vr: str, value: bytes, path: str) -> dict[str, Any]:
        if not value:
            return {"vr": vr}
        if len(value) > self.inline_max:
            return {"vr": vr, "BulkDataURI": self.bulk_uri(path)}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("utf-8")}

    def converted(self, elem: Any) -> dict[str, Any] | None:
        """The JSON of an element pydicom already converted, for plain value types only."""
        vr = elem.VR
        types = _CONVERTED_TYPES.get(vr)
        if types is None:
            return None
        value = elem.value
        if type(value) in (MultiValue, list):
            items = list(value)
            if len(items) < 2:
                return None  # pydicom's VM rules for these are its own
            kind = type(items[0])
            if any(type(item) is not kind for item in items):
                return None
        else:
            items, kind = [value], type(value)
        if kind not in types:
            return None
        if kind is PersonName or kind is str or kind is UID:
            if len(items) == 1 and not value:
                return {"vr": vr}  # VM 0 (numbers have a VM of 1 even when zero)
            if kind is PersonName:
                return _person_names(items)
            return {"vr": vr, "Value": items}
        number = float if vr in _FLOAT_VRS else int
        return {"vr": vr, "Value": [number(item) for item in items]}


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


def _default_text(vr: str, value: bytes) -> dict[str, Any]:
    """AS CS DA DT TM: default character set, trailing spaces and NULs dropped."""
    return _strings(vr, value.decode(default_encoding).rstrip(" \x00").split("\\"))


def _ui(vr: str, value: bytes) -> dict[str, Any]:
    items = value.decode(default_encoding).rstrip("\0 ").split("\\")
    return _strings(vr, [item.strip() for item in items])


def _ae(vr: str, value: bytes) -> dict[str, Any]:
    return _strings(vr, [item.strip() for item in value.decode(default_encoding).split("\\")])


def _ur(vr: str, value: bytes) -> dict[str, Any]:
    return _strings(vr, [value.decode(default_encoding).rstrip()])


def _is(vr: str, value: bytes) -> dict[str, Any] | None:
    items = value.decode(default_encoding).rstrip(" \x00").split("\\")
    if len(items) == 1 and not items[0]:
        return {"vr": vr}
    for item in items:
        if not _IS_TEXT.fullmatch(item):
            return None
    return {"vr": vr, "Value": [int(item) for item in items]}


def _ds(vr: str, value: bytes) -> dict[str, Any] | None:
    items = value.decode(default_encoding).strip().rstrip(" \x00").split("\\")
    if len(items) == 1 and not items[0]:
        return {"vr": vr}
    for item in items:
        if not _DS_TEXT.fullmatch(item):
            return None
    return {"vr": vr, "Value": [float(item) for item in items]}


_RAW_TEXT: dict[str, Callable[[str, bytes], dict[str, Any] | None]] = {
    **dict.fromkeys(("AS", "CS", "DA", "DT", "TM"), _default_text),
    "UI": _ui, "AE": _ae, "UR": _ur, "IS": _is, "DS": _ds,
}


def _charset_text(vr: str, value: bytes, codec: str | None) -> dict[str, Any] | None:
    """SH LO UC ST LT UT PN in the dataset's simple codec, or None."""
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
        names.append(groups)
    if len(names) == 1 and not names[0]:
        return {"vr": vr}
    return _groups_json(names)


def _person_names(names: list[PersonName]) -> dict[str, Any] | None:
    return _groups_json([name.components for name in names])


def _groups_json(names: list[Any]) -> dict[str, Any] | None:
    """PN values as pydicom writes them: up to three groups each; None when a name has no
    group at all (pydicom raises on it)."""
    values = []
    for groups in names:
        if not groups:
            return None
        name = {"Alphabetic": groups[0]}
        if len(groups) > 1:
            name["Ideographic"] = groups[1]
        if len(groups) > 2:
            name["Phonetic"] = groups[2]
        values.append(name)
    return {"vr": "PN", "Value": values}


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
