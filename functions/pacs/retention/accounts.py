"""``purge_unconfirmed``: sign-in accounts that never confirmed 18+ are deleted.

Signing up creates a Firebase Auth account (the email) before the 18+ prompt; choosing
"Sign out" there leaves it without a profile. Nothing else would ever remove it, so this job
deletes each Auth account that has no profile (``users/{uid}``), holds no data in any
location of the personal-data registry (:data:`pacs.privacy.personal_data.LOCATIONS`: studies,
uploads, objects, shares, requests, ...), and has not been used (created, signed in or
refreshed a token) for ``unconfirmed_account_days``. What such an account may have written
without a profile (the consent ledger, profile history) goes with it.

Why the registry and not a list of collections here: a feature that stores user data
somewhere new adds a location there, and this job then keeps accounts holding it. An
account with an open privacy request is kept (the request is data).

Race with a user confirming 18+ meanwhile: the account has been idle for days, and the
profile is read again right before the deletion; the Auth deletion is last, so a profile
written in the moment between them would at worst lose its sign-in, which the next
sign-up recreates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pacs.privacy import personal_data
from pacs.privacy.profile import profile_ref
from pacs.retention.context import JobContext

# What an account without a profile may hold and still be purged (deleted with it).
PURGED_WITH_ACCOUNT = ("consent_ledger", "profile_history")
NOT_DATA = ("auth_user", "profile", *PURGED_WITH_ACCOUNT)
USERS_PER_PAGE = 500


def last_used(user: Any) -> datetime:
    """The latest of the account's creation, last sign-in and last token refresh (aware)."""
    meta = user.user_metadata
    stamps = [meta.creation_timestamp, meta.last_sign_in_timestamp,
              getattr(meta, "last_refresh_timestamp", None)]
    latest = max(int(s) for s in stamps if s)
    return datetime.fromtimestamp(latest / 1000, tz=UTC)


def holds_data(subject: personal_data.Subject) -> bool:
    """True when any registry location other than the account itself has an item."""
    for location in personal_data.LOCATIONS:
        if location.name in NOT_DATA:
            continue
        if next(iter(location.find(subject)), None) is not None:
            return True
    return False


def _users(ctx: JobContext) -> Any:
    """Every Auth user, page by page; in a scoped (test) run, only the scope's uid."""
    from firebase_admin import auth

    app = ctx.clients.firebase_app
    scope_uid = ctx.scope.rstrip("/")
    if scope_uid:
        try:
            yield auth.get_user(scope_uid, app=app)
        except auth.UserNotFoundError:
            pass
        return
    page = auth.list_users(max_results=USERS_PER_PAGE, app=app)
    while page is not None:
        yield from page.users
        if ctx.out_of_time():
            return
        page = page.get_next_page()


def purge_unconfirmed(ctx: JobContext) -> None:
    cutoff = ctx.now - timedelta(days=ctx.settings.unconfirmed_account_days)
    for user in _users(ctx):
        ctx.count("accounts_seen")
        try:
            subject = personal_data.Subject(ctx.clients, user.uid)
        except ValueError:
            ctx.count("accounts_unsafe_uid")  # no safe path segment: left alone
            continue
        try:
            if last_used(user) > cutoff:
                continue
            if profile_ref(ctx.firestore, user.uid).get().exists or holds_data(subject):
                continue
            ctx.count("accounts_unconfirmed")
            if profile_ref(ctx.firestore, user.uid).get().exists:
                continue  # confirmed 18+ while this run looked
            for name in (*PURGED_WITH_ACCOUNT, "auth_user"):
                personal_data.by_name(name).delete(subject)
            ctx.changed("accounts_purged")
        except Exception as err:  # noqa: BLE001 - counted; the next run retries it
            ctx.error("purge_unconfirmed", err)
