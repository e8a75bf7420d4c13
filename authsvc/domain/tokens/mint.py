"""Minting access tokens: JWS compact, ``typ: at+jwt`` (RFC 9068 section 2)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from authsvc.domain.tokens.signing_keys import SigningKey
from authsvc_client._jose import b64url_encode, json_bytes, sign


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a token is for and what it carries."""

    subject: str
    audiences: Sequence[str]
    scopes: Sequence[str]
    client_id: str
    auth_time: float
    amr: Sequence[str]
    acr: str
    session_id: str = ""
    cert_thumbprint: str = ""
    #: RFC 8693 section 4.1: who acts for the subject (a delegated token).
    act: Mapping[str, Any] | None = None
    #: A delegated token lives no longer than the token it was exchanged
    #: from: its exp is at most this (0: no cap).
    not_after: int = 0


def mint_access_token(
    grant: Grant, *, key: SigningKey, issuer: str, now: float, ttl: int
) -> tuple[str, str, int]:
    """Give (token, jti, exp)."""
    iat = int(now)
    exp = min(iat + ttl, grant.not_after) if grant.not_after else iat + ttl
    jti = secrets.token_urlsafe(16)
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": grant.subject,
        "aud": grant.audiences[0] if len(grant.audiences) == 1 else list(grant.audiences),
        "exp": exp,
        "iat": iat,
        "nbf": iat,
        "jti": jti,
        "client_id": grant.client_id,
        "scope": " ".join(grant.scopes),
        "auth_time": int(grant.auth_time),
    }
    # Only what applies: a service client has no authentication methods to name.
    if grant.amr:
        claims["amr"] = list(grant.amr)
    if grant.acr:
        claims["acr"] = grant.acr
    if grant.session_id:
        claims["sid"] = grant.session_id
    if grant.cert_thumbprint:
        claims["cnf"] = {"x5t#S256": grant.cert_thumbprint}
    if grant.act is not None:
        claims["act"] = grant.act
    header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    signing_input = b64url_encode(json_bytes(header)) + "." + b64url_encode(json_bytes(claims))
    signature = sign(key.alg, key.private, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}", jti, exp
