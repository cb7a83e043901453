"""Restriction of processing on DICOMweb (docs/dicomweb.md, *Restriction*): while
``users/{uid}.restricted`` or ``studies/{key}.restricted`` is true, a study is listed but
not opened (:func:`pacs.dicomweb.qido.open_study`: 403 ``restricted``) and STOW-RS adds
nothing to it (:class:`StudyFlags`, FailureReason 0124).
"""

from __future__ import annotations

from typing import Any

from pacs import ids
from pacs.errors import Forbidden
from pacs.indexing import catalog


def flagged(snap: Any) -> bool:
    """Whether an account's or a study's document snapshot carries the restriction."""
    return bool(snap is not None and snap.exists
                and (snap.to_dict() or {}).get("restricted") is True)


def refusal() -> Forbidden:
    """403 ``restricted`` for a resource that would open a restricted study."""
    return Forbidden("processing of this study or account is restricted: it is listed but "
                     "not retrieved, rendered or added to", code="restricted")


class StudyFlags:
    """Whether a STOW part's study may take new instances: not while the account or that
    study is restricted. One batched read for the first study (with the account's flag),
    one read per further study of the request; parts of a study already seen cost
    nothing. Call it with the part's StudyInstanceUID."""

    def __init__(self, firestore: Any, hash_key: bytes, uid: str) -> None:
        self._fs, self._hash_key, self._uid = firestore, hash_key, uid
        self._account: bool | None = None
        self._studies: dict[str, bool] = {}

    def __call__(self, study_uid: str) -> bool:
        if study_uid not in self._studies:
            study = catalog.study_ref(self._fs, ids.study_key(self._hash_key, self._uid,
                                                              study_uid))
            user = self._fs.collection("users").document(self._uid)
            refs = [study] if self._account is not None else [study, user]
            snaps = {s.reference.path: s
                     for s in self._fs.get_all(refs, field_paths=["restricted"])}
            if self._account is None:
                self._account = flagged(snaps.get(user.path))
            self._studies[study_uid] = flagged(snaps.get(study.path))
        return bool(self._account) or self._studies[study_uid]
