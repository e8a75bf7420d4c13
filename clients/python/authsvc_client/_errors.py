"""The client's exception tree, and the one seam that builds it from gRPC errors.

authsvc gives a fixed, safe message for every status (docs/api.md, "Status codes"), so
the server's details are passed on as the message; nothing else is added.
"""

from __future__ import annotations

import math
from typing import Any

import grpc

#: Trailing metadata key of a throttled answer: the delay in milliseconds.
RETRY_AFTER_KEY = "retry-after-ms"


class AuthsvcError(Exception):
    """A call to authsvc failed. ``code`` is the gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str = "", code: grpc.StatusCode | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.name}, message={self.message!r})"


class InvalidCredentials(AuthsvcError):
    """UNAUTHENTICATED: bad password, secret, code, refresh token or bearer token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(AuthsvcError):
    """PERMISSION_DENIED: authenticated, but not allowed."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Throttled(AuthsvcError):
    """RESOURCE_EXHAUSTED: too many attempts. ``retry_after`` is the delay in
    seconds the server asked for (trailing metadata ``retry-after-ms``), or
    ``None`` when it named none."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ReauthRequired(AuthsvcError):
    """FAILED_PRECONDITION: log in again (password and MFA), or the account is
    not in the state the call needs (for example no MFA enrolment pending)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(AuthsvcError):
    """UNAVAILABLE: authsvc (or its database) cannot be reached. Safe to retry."""

    code = grpc.StatusCode.UNAVAILABLE


class VerifierUnavailable(Unavailable):
    """The :class:`TokenVerifier` cannot vouch for any token now: its revocation
    stream has been down longer than ``max_staleness`` and it may not (or could
    not) ask authsvc instead. Fail closed, but do not blame the token."""


_BY_CODE: dict[grpc.StatusCode, type[AuthsvcError]] = {
    grpc.StatusCode.UNAUTHENTICATED: InvalidCredentials,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: ReauthRequired,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def _retry_after(trailing: Any) -> float | None:
    for key, value in trailing or ():
        if key == RETRY_AFTER_KEY:
            try:
                millis = float(value)
            except (TypeError, ValueError):
                return None
            return millis / 1000 if math.isfinite(millis) and millis >= 0 else None
    return None


def translate(exc: grpc.RpcError) -> AuthsvcError:
    """One gRPC error (sync or aio) as an :class:`AuthsvcError`."""
    code_fn, details_fn = getattr(exc, "code", None), getattr(exc, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    message = (details_fn() if callable(details_fn) else "") or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        trailing_fn = getattr(exc, "trailing_metadata", None)
        return Throttled(message, _retry_after(trailing_fn() if callable(trailing_fn) else None))
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else AuthsvcError(message, code)
