"""AuthError -> one HTTP status and one OAuth error (RFC 6749 section 5.2),
with one fixed, safe description: the HTTP twin of grpc_status.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from authsvc.errors import AuthError, Code, Throttled, safe_message

#: RFC 6749 section 5.2 for a failed client authentication: 401, and a
#: challenge in the scheme the client may use.
CLIENT_CHALLENGE = 'Basic realm="authsvc", charset="UTF-8"'
INTERNAL_DESCRIPTION = "internal error"

_STATUS = {
    Code.INVALID_ARGUMENT: (400, "invalid_request"),
    # A refresh token (or other grant) that is not good; failed client
    # authentication is told apart by the door (see ``oauth_error``).
    Code.INVALID_CREDENTIALS: (400, "invalid_grant"),
    # A bearer token a call needed (no HTTP endpoint takes one yet): RFC 6750.
    Code.BEARER_REJECTED: (401, "invalid_token"),
    Code.PERMISSION_DENIED: (400, "invalid_scope"),
    Code.THROTTLED: (429, "slow_down"),
    Code.REAUTH_REQUIRED: (400, "invalid_grant"),
    Code.PRECONDITION: (400, "invalid_request"),
    Code.CONFLICT: (400, "invalid_request"),
    Code.NOT_FOUND: (400, "invalid_request"),  # an admin lookup; no OAuth endpoint raises it
    Code.UNAVAILABLE: (503, "temporarily_unavailable"),
}


@dataclass(frozen=True)
class OAuthError:
    """An error answer: status, ``error``, ``error_description``, headers."""

    status: int
    error: str
    description: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def oauth_error(error: AuthError, *, client_auth: bool = False) -> OAuthError:
    """``client_auth``: the error came from authenticating the client, which
    RFC 6749 answers with 401 ``invalid_client`` and a challenge."""
    description = safe_message(error)
    if client_auth and error.code is Code.INVALID_CREDENTIALS:
        return OAuthError(401, "invalid_client", description, {"WWW-Authenticate": CLIENT_CHALLENGE})
    status, code = _STATUS[error.code]
    if error.code is Code.PERMISSION_DENIED and description.startswith("audience"):
        code = "invalid_target"  # RFC 8707 section 2: the audience (resource) asked for
    headers: dict[str, str] = {}
    if isinstance(error, Throttled):
        # Whole seconds (RFC 9110 section 10.2.3), rounded up: never invite a
        # retry that is still too early.
        headers["Retry-After"] = str(max(1, math.ceil(round(error.retry_after, 3))))
    elif error.code is Code.UNAVAILABLE:
        headers["Retry-After"] = "1"
    return OAuthError(status, code, description, headers)


def bad_request(description: str, error: str = "invalid_request", status: int = 400) -> OAuthError:
    """An error of the HTTP request itself (content type, form, parameters)."""
    return OAuthError(status, error, description)


INTERNAL = OAuthError(500, "server_error", INTERNAL_DESCRIPTION)
