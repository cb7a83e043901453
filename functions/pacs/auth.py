"""Firebase ID token verification. Always with ``check_revoked``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pacs.errors import AuthError


@dataclass(frozen=True)
class Caller:
    """A verified caller: the uid and the claims of the token."""

    uid: str
    claims: Mapping[str, Any]

    @property
    def email(self) -> str | None:
        return self.claims.get("email")

    @property
    def auth_time(self) -> int:
        return int(self.claims.get("auth_time", 0))


def bearer_token(headers: Mapping[str, str]) -> str:
    """Return the token of an ``Authorization: Bearer`` header, or raise AuthError."""
    value = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("sign in first: no bearer token", code="missing_token")
    return token.strip()


def verify_caller(headers: Mapping[str, str], firebase_app: Any) -> Caller:
    """Verify the request's ID token (signature, expiry, revocation) and return the caller."""
    from firebase_admin import auth

    token = bearer_token(headers)
    try:
        claims = auth.verify_id_token(token, app=firebase_app, check_revoked=True)
    except auth.RevokedIdTokenError as exc:
        raise AuthError("session revoked: sign in again", code="revoked_token") from exc
    except auth.UserDisabledError as exc:
        raise AuthError("account disabled", code="user_disabled") from exc
    except (auth.ExpiredIdTokenError, auth.InvalidIdTokenError, ValueError) as exc:
        raise AuthError("invalid or expired token", code="invalid_token") from exc
    except auth.UserNotFoundError as exc:
        raise AuthError("account no longer exists", code="user_not_found") from exc
    return Caller(uid=claims["uid"], claims=claims)
