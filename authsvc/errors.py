"""One error tree. Each class has a stable code; the api layer maps each code
to one gRPC status and one fixed message, so no detail ever leaks."""

from __future__ import annotations

import enum


class Code(enum.Enum):
    INVALID_ARGUMENT = "invalid_argument"
    INVALID_CREDENTIALS = "invalid_credentials"
    PERMISSION_DENIED = "permission_denied"
    THROTTLED = "throttled"
    REAUTH_REQUIRED = "reauth_required"
    PRECONDITION = "precondition"
    CONFLICT = "conflict"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    BEARER_REJECTED = "bearer_rejected"


class AuthError(Exception):
    """Base of every error the domain raises on purpose.

    ``message`` must be safe to show a caller: never a secret, never a hint
    that tells an unknown user from a wrong password.
    """

    code: Code = Code.INVALID_CREDENTIALS
    default_message = "invalid credentials"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidArgument(AuthError):
    code = Code.INVALID_ARGUMENT
    default_message = "invalid request"


class InvalidCredentials(AuthError):
    """Any failed authentication: one answer for every cause."""

    code = Code.INVALID_CREDENTIALS
    default_message = "invalid credentials"


class PermissionDenied(AuthError):
    code = Code.PERMISSION_DENIED
    default_message = "permission denied"


class Throttled(AuthError):
    code = Code.THROTTLED
    default_message = "too many attempts, retry later"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ReauthRequired(AuthError):
    code = Code.REAUTH_REQUIRED
    default_message = "re-authentication required"


class PreconditionFailed(AuthError):
    code = Code.PRECONDITION
    default_message = "precondition failed"


class Conflict(AuthError):
    code = Code.CONFLICT
    default_message = "already exists"


class NotFound(AuthError):
    """An admin call named a user, client, session or key that is not there.
    Never raised where the caller must not learn what exists (logins)."""

    code = Code.NOT_FOUND
    default_message = "not found"


class StoreUnavailable(AuthError):
    code = Code.UNAVAILABLE
    default_message = "service unavailable, retry later"


class StreamEnded(AuthError):
    """The server ended a stream (shutdown, lost database, a reader too slow):
    UNAVAILABLE, so that a client resumes elsewhere instead of taking the end
    for "finished"."""

    code = Code.UNAVAILABLE
    default_message = "service unavailable, retry later"


class DatabaseUnreachable(StoreUnavailable):
    """The database could not be opened at all (start-up, an admin command).
    ``detail`` is one line for the operator: what failed, on which host, what
    to do. It names no password and never reaches a caller (UNAVAILABLE's
    message is fixed)."""

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail


class BearerRejected(AuthError):
    """A self-service call without a usable bearer token for authsvc itself.

    Each subclass has one fixed message that names what the call requires.
    That leaks nothing: who may call what is documented, and the answer says
    nothing about any user or about why a well-formed token failed (a token
    that is forged, expired or revoked still gets "invalid credentials")."""

    code = Code.BEARER_REJECTED
    #: The one message of each subclass; ``{audience}`` is authsvc's own
    #: audience (a setting, public), the only thing filled in.
    template = "invalid credentials"

    def __init__(self, audience: str = "authsvc") -> None:
        super().__init__(self.template.format(audience=audience))


class BearerMissing(BearerRejected):
    template = (
        "this call needs 'authorization: Bearer <access token>' metadata: a token from a recent login "
        "that asked for the audience {audience} alone"
    )


class BearerMalformed(BearerRejected):
    template = "the authorization metadata must be 'Bearer <access token>' (the word Bearer, a space, the token)"


class BearerWrongAudience(BearerRejected):
    template = (
        "this call needs a token whose only audience is {audience}: log in again asking for the audience "
        "{audience} alone"
    )


# Codes whose message is fixed whatever the error said, so that no cause leaks
# (every front door answers with these).
_FIXED_MESSAGES = {
    Code.INVALID_CREDENTIALS: "invalid credentials",
    Code.UNAVAILABLE: "service unavailable, retry later",
}


def safe_message(error: AuthError) -> str:
    """The message a caller may see for ``error``."""
    return _FIXED_MESSAGES.get(error.code, error.message)
