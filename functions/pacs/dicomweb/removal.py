"""``DELETE /studies/{study}``: the study deletion of :mod:`pacs.studies.deletion`, reached by
StudyInstanceUID.

The UID names the caller's study through its keyed id (HMAC of the caller's uid and the UID),
so unknown, malformed and other users' UIDs get the same 404. The answer is the deletion
record, as the studies function gives it: 200 when completed, 202 when accepted and finishing
by itself (``waiting_for: upload`` while an upload that carried the study is still
processed; the scheduled job completes it). Deleting a study already deleted answers its
record again.
"""

from __future__ import annotations

from typing import Any

from pacs import ids
from pacs.clients import Clients
from pacs.dicomweb import qido
from pacs.errors import NotFound
from pacs.studies import deletion


def delete_study(clients: Clients, uid: str, study_uid: str) -> tuple[dict[str, Any], int]:
    """Delete one of the caller's studies everywhere; (``{"deletion": record}``, status).

    Raises
    ------
    NotFound
        No such study of the caller's (and no deletion of it to answer).
    TransientError
        A location could not be deleted yet; sending the DELETE again finishes it.
    """
    if not qido.is_uid(study_uid):
        raise NotFound("no such study", code="not_found")
    study_key = ids.study_key(clients.settings.hash_key, uid, study_uid)
    record = deletion.delete_study(clients, uid, study_key)
    return {"deletion": record}, 200 if record["status"] == deletion.COMPLETED else 202
