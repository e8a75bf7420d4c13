"""Authenticating the caller of a self-service RPC from its bearer token."""

from __future__ import annotations

from authsvc.domain.deps import Deps
from authsvc.domain.models import CallInfo
from authsvc.errors import BearerMissing, BearerWrongAudience, InvalidCredentials, ReauthRequired
from authsvc_client import AccessClaims, Reason, Requirements, TokenRejected


def authenticate(deps: Deps, token: str | None, call: CallInfo, *, max_auth_age: int = 0) -> AccessClaims:
    """The verified claims of the caller's own access token, which must be for
    authsvc itself. A login older than ``max_auth_age`` asks for a new one."""
    audience = deps.policy.self_audience
    if not token:
        raise BearerMissing(audience)
    requirements = Requirements(
        audience=audience,
        cert_thumbprint=call.cert_thumbprint,
        max_auth_age=max_auth_age,
    )
    try:
        claims = deps.live.verify(token, requirements)
    except TokenRejected as exc:
        if exc.reason is Reason.AUTH_TOO_OLD:
            raise ReauthRequired("recent authentication required") from exc
        if exc.reason is Reason.WRONG_AUDIENCE:
            # Said only of a token whose signature, issuer and times held:
            # naming the requirement tells its holder nothing new.
            raise BearerWrongAudience(audience) from exc
        raise InvalidCredentials() from exc
    if claims.aud != (audience,):
        raise BearerWrongAudience(audience)  # also meant for another service, which could replay it here
    return claims
