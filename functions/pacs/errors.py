"""Narrow exception classes. Each carries a stable ``code`` and a plain-language message."""

from __future__ import annotations


class PacsError(Exception):
    """Base class: ``code`` is machine-readable, ``str(err)`` is for people."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class AuthError(PacsError):
    """The caller is not signed in, or the token is bad, expired or revoked."""

    code = "unauthenticated"
    http_status = 401


class NotFound(PacsError):
    """The thing does not exist, or is not the caller's (never says which)."""

    code = "not_found"
    http_status = 404


class BadRequest(PacsError):
    """The request is malformed or breaks a documented limit."""

    code = "bad_request"
    http_status = 400


class QuotaExceeded(PacsError):
    """A per-user storage quota or rate limit is reached."""

    code = "quota_exceeded"
    http_status = 429


class Forbidden(PacsError):
    """Signed in, but this action is not allowed now (restriction, stale sign-in)."""

    code = "forbidden"
    http_status = 403


class RejectedInput(PacsError):
    """An uploaded file or member is refused; ``code`` says why (see ``ingest_results``)."""

    code = "rejected"
    http_status = 422


class TransientError(PacsError):
    """A dependency failed in a way worth retrying (the event is redelivered)."""

    code = "transient"
    http_status = 503
