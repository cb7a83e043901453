"""De-identified copies of instances for shares: DICOM PS3.15 Annex E, Basic Application
Level Confidentiality Profile, with the Retain Longitudinal Temporal Information with Modified
Dates option.

The attribute table and its X/Z/D/K actions are the maintained ones of ``dicom-anonymizer``
(Kitware; its ``dicomfields_2026c`` table, taken from the current standard; why this library:
docs/privacy.md, *De-identified shares*). This module adds what the library leaves random or
blank and a share needs consistent, all keyed by the share's secret:

- **UIDs** (every UI value but class UIDs, transfer syntaxes and UIDs the standard defines)
  become ``2.25.<128 bits of HMAC-SHA256(secret, uid)>``: the same study, series and
  references line up across every instance of one share, and two shares never match.
- **Dates** (DA, DT) move back by one whole number of days (62 to 730) drawn from the secret,
  so intervals hold; the patient's birth date is emptied (Z) all the same.
- The actions apply in every sequence item, not only at the top level; private attributes go
  everywhere; any person name the table does not list is emptied too.
- ``PatientIdentityRemoved`` ``YES``, ``DeidentificationMethod`` and its code sequence
  (DCM 113100, 113107), ``LongitudinalTemporalInformationModified`` ``MODIFIED``.

Instances that may carry identity in their pixels are left out with a reason, never copied:
``BurnedInAnnotation`` ``YES``, ultrasound and secondary capture. Pure: no cloud, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

TABLE = "dicomfields_2026c"  # dicom-anonymizer's Annex E table (PS3.15 2026c)
METHOD = ("PS3.15 Annex E Basic Application Level Confidentiality Profile; Retain "
          "Longitudinal Temporal Information with Modified Dates Option")
MIN_SHIFT_DAYS, MAX_SHIFT_DAYS = 62, 730
US_CLASSES = {"1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.6.2",
              "1.2.840.10008.5.1.4.1.1.6.3", "1.2.840.10008.5.1.4.1.1.3.1",
              "1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3"}
SC_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.7"  # SC and its multi-frame variants (.1 to .4)
EMPTIED = ((0x0010, 0x0030),)  # Patient's Birth Date: Z even though dates are shifted
_DATE = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})(.*)$", re.S)
_LOCK = threading.Lock()  # dicom-anonymizer keeps a module-level UID cache; see _apply


@dataclass(frozen=True)
class Copy:
    """One instance's outcome: ``data`` (Part 10 bytes) or ``left_out`` (a reason code),
    and the remapped study, series and instance UIDs of a copy."""

    data: bytes | None = None
    left_out: str | None = None
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""


class Deidentifier:
    """The de-identification of one share: UIDs and dates consistent for one ``secret``
    (at least 32 bytes, per share, never stored beside the copy)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the share secret must be at least 32 bytes")
        self._secret = secret
        digest = self._mac(b"date-shift")
        span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
        self.shift = timedelta(days=-(MIN_SHIFT_DAYS + int.from_bytes(digest[:8], "big") % span))
        self._rules = _rules()

    def _mac(self, value: bytes) -> bytes:
        return hmac.new(self._secret, value, hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        """The share's UID for ``value``; the same within the share, unlinkable across."""
        number = int.from_bytes(self._mac(b"uid\0" + value.strip().encode("ascii", "replace"))
                                [:16], "big")
        return f"2.25.{number}"

    def shift_date(self, value: str) -> str:
        """A DA or DT value moved back by the share's shift (time part kept); '' when it is
        not a date."""
        match = _DATE.match(value.strip())
        if not match:
            return ""
        try:
            day = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return ""
        try:
            moved = day + self.shift
        except OverflowError:
            return ""
        return moved.strftime("%Y%m%d") + match.group(4)

    def copy(self, data: bytes) -> Copy:
        """De-identify one Part 10 instance (``data``), or say why it is left out:
        ``unreadable``, ``burned_in_annotation``, ``ultrasound``, ``secondary_capture``."""
        import pydicom

        # A parser over bytes can fail in many ways (struct, KeyError, ValueError...): any
        # failure is this instance's "unreadable", never the share's.
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
            reason = left_out_reason(ds)
        except Exception:  # noqa: BLE001
            return Copy(left_out="unreadable")
        if reason:
            return Copy(left_out=reason)
        if not ds.get("SOPInstanceUID") or not ds.get("SOPClassUID"):
            return Copy(left_out="unreadable")
        out = io.BytesIO()
        try:
            self.deidentify_dataset(ds)
            ds.save_as(out, enforce_file_format=True)
        except Exception:  # noqa: BLE001
            return Copy(left_out="unreadable")
        return Copy(data=out.getvalue(), study_uid=str(ds.get("StudyInstanceUID", "")),
                    series_uid=str(ds.get("SeriesInstanceUID", "")),
                    sop_uid=str(ds.get("SOPInstanceUID", "")))

    def deidentify_dataset(self, ds: Any) -> None:
        """De-identify a read dataset in place (no left-out check: :meth:`copy` does it)."""
        from pydicom import __version__ as pydicom_version
        from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

        ds.remove_private_tags()
        self._remap(ds)
        _apply(ds, self._rules)
        _mark(ds)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        # The copy is written here: the writer's implementation, not the modality's.
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta.ImplementationVersionName = f"PYDICOM {pydicom_version}"[:16]
        ds.preamble = b"\0" * 128

    def _remap(self, ds: Any) -> None:
        """Every instance UID remapped and every date shifted, in every item."""
        from pydicom.multival import MultiValue

        def one(dataset: Any, element: Any) -> None:
            if element.VR == "UI" and element.value and _is_instance_uid(element):
                if isinstance(element.value, MultiValue | list):
                    element.value = [self.uid(v) for v in element.value]
                else:
                    element.value = self.uid(str(element.value))
            elif element.VR in ("DA", "DT") and element.value:
                if element.tag in EMPTIED:
                    element.value = ""
                elif isinstance(element.value, MultiValue | list):
                    element.value = [self.shift_date(str(v)) for v in element.value]
                else:
                    element.value = self.shift_date(str(element.value))

        ds.walk(one)
        ds.file_meta.walk(one)


def left_out_reason(ds: Any) -> str | None:
    """Why an instance must not be copied (its pixels may show who it is), or None."""
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return "burned_in_annotation"
    sop_class = str(ds.get("SOPClassUID", ""))
    if str(ds.get("Modality", "")).strip().upper() == "US" or sop_class in US_CLASSES:
        return "ultrasound"
    if sop_class.startswith(SC_CLASS_PREFIX) or str(ds.get("Modality", "")).strip() == "SC":
        return "secondary_capture"
    return None


def _is_instance_uid(element: Any) -> bool:
    """Instance UIDs are remapped; class UIDs, transfer syntaxes and UIDs the standard
    defines (coding schemes, frames of reference of the standard) are kept."""
    from pydicom.datadict import keyword_for_tag
    from pydicom.uid import UID_dictionary

    keyword = keyword_for_tag(element.tag)
    if keyword.endswith("ClassUID") or keyword in ("TransferSyntaxUID",
                                                   "ImplementationClassUID"):
        return False
    values = element.value if isinstance(element.value, list | tuple) else [element.value]
    return not all(str(v) in UID_dictionary for v in values)


def _rules() -> dict[tuple[int, ...], Any]:
    """The library's Annex E actions with dates and UIDs left to :meth:`Deidentifier._remap`
    (already remapped and shifted): every U action, and X/Z/D on DA/DT, becomes keep."""
    from dicomanonymizer import simpledicomanonymizer as sda
    from pydicom.datadict import dictionary_VR

    rules = dict(sda.initialize_actions(TABLE))
    for tag, action in list(rules.items()):
        if len(tag) != 2:
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        if action in (sda.replace_UID, sda.delete_or_empty_or_replace_UID):
            rules[tag] = sda.keep
        elif vr in ("DA", "DT") and tag not in EMPTIED and action is not sda.delete:
            rules[tag] = sda.keep
    return rules


def annex_e_tags() -> dict[tuple[int, int], str]:
    """Every single-tag attribute of the Annex E table, with its action letters."""
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    out: dict[tuple[int, int], str] = {}
    for name, tags in dicom_anonymization_database_selector(TABLE).items():
        if name.endswith("_TAGS") and name != "ALL_TAGS":
            letters = name[:-5].replace("_STAR", "*").replace("_", "/")
            out.update({tag: letters for tag in tags if len(tag) == 2})
    return out


def _apply(ds: Any, rules: dict[tuple[int, ...], Any]) -> None:
    """The table's actions on ``ds`` and, depth first, every item of its sequences; then
    private attributes and any leftover person name emptied. The library caches random UIDs
    (for the few D actions on UID-bearing sequences) in a module dict: it is cleared after
    each instance, under a lock, so nothing links one copy to another."""
    from dicomanonymizer import simpledicomanonymizer as sda

    def one_level(dataset: Any) -> None:
        sda.anonymize_dataset(dataset, None, True, lambda: dict(rules))
        for element in list(dataset):
            if element.VR == "SQ" and element.value:
                for item in element.value:
                    one_level(item)
            elif element.VR == "PN" and element.value:
                element.value = ""

    with _LOCK:
        try:
            one_level(ds)
        finally:
            sda.dictionary.clear()


def _mark(ds: Any) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    codes = []
    for value, meaning in (("113100", "Basic Application Confidentiality Profile"),
                           ("113107", "Retain Longitudinal Temporal Information Modified "
                                      "Dates Option")):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
