"""The rules for accepting a Transaction Token, in one place.

Transaction Tokens (draft-ietf-oauth-transaction-tokens-10) carry a call's
subject, scope and context through the workloads of one trust domain. authsvc
(its Txn-Token Service, when it checks a token it is asked to replace) and
every service's :class:`TokenVerifier` call :func:`verify_txn_token`. It shares
:mod:`._verify`'s primitives: the key and algorithm pinned by ``kid``, the
strict base64url and JSON, the revocation rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._keys import VerificationKey
from ._verify import (
    DEFAULT_LEEWAY_SECONDS,
    MAX_LEEWAY_SECONDS,
    Reason,
    TokenRejected,
    decode_signed,
)

#: The token type of a Txn-Token request and response (the draft, section 7.1).
TXN_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:txn_token"  # noqa: S105 - a URN, not a secret
#: The ``typ`` header of every Txn-Token (the draft, section 6.1); media types
#: compare case-insensitively (RFC 7515 section 4.1.9).
_TXN_TYPES = frozenset({"txntoken+jwt", "application/txntoken+jwt"})
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "txn", "scope", "req_wl")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TxnClaims:
    """The claims of an accepted Txn-Token. ``tctx`` (immutable for the whole
    call chain) and ``rctx`` (the request's context: ``req_ip``, ``authn``,
    ``req_wl``) are read-only mappings of JSON values."""

    iss: str
    sub: str
    aud: tuple[str, ...]
    exp: int
    iat: int
    txn: str
    scope: tuple[str, ...]
    #: The workloads that requested this token, first the one that asked for
    #: the transaction, then each that replaced it (``req_wl``, comma-separated).
    req_wl: tuple[str, ...]
    tctx: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    rctx: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    purp: str = ""
    sid: str = ""  # the subject's session: revoking it ends the token
    jti: str = ""  # this token (a replacement has its own, and the same txn)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TxnRequirements:
    """What a workload needs of a Txn-Token: that it be for the workload's own
    ``trust_domain`` (required: a Txn-Token is never accepted outside the trust
    domain its ``aud`` names), and carry every one of ``scopes``."""

    trust_domain: str
    scopes: tuple[str, ...] = ()


#: Given accepted claims, say whether they were revoked (jti, session, subject).
TxnRevocationCheck = Callable[[TxnClaims], bool]


def _reject(reason: Reason) -> TokenRejected:
    return TokenRejected(reason)


def _time(payload: Mapping[str, Any], name: str) -> int:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise _reject(Reason.MALFORMED)
    return int(value)


def _str(payload: Mapping[str, Any], name: str, required: bool = False) -> str:
    value = payload.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise _reject(Reason.MALFORMED)
    return value


def _object(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name, _EMPTY)
    if not isinstance(value, Mapping):
        raise _reject(Reason.MALFORMED)
    return MappingProxyType(value)


def _audiences(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise _reject(Reason.MALFORMED)


def parse_txn_claims(payload: Mapping[str, Any]) -> TxnClaims:
    """Type-check a Txn-Token's claims (after its signature was checked)."""
    for name in _REQUIRED_CLAIMS:
        if name not in payload:
            raise _reject(Reason.MALFORMED)
    workloads = tuple(_str(payload, "req_wl", required=True).split(","))
    if not all(workloads):
        raise _reject(Reason.MALFORMED)
    return TxnClaims(
        iss=_str(payload, "iss", required=True),
        sub=_str(payload, "sub", required=True),
        aud=_audiences(payload["aud"]),
        exp=_time(payload, "exp"),
        iat=_time(payload, "iat"),
        txn=_str(payload, "txn", required=True),
        scope=tuple(_str(payload, "scope").split()),
        req_wl=workloads,
        tctx=_object(payload, "tctx"),
        rctx=_object(payload, "rctx"),
        purp=_str(payload, "purp"),
        sid=_str(payload, "sid"),
        jti=_str(payload, "jti"),
        raw=MappingProxyType(dict(payload)),
    )


def read_txn_token(token: str, keys: Mapping[str, VerificationKey]) -> TxnClaims:
    """What depends on the token alone: form, ``typ: txntoken+jwt``, the
    ``kid``-pinned key and algorithm, the signature, the claims' types."""
    return parse_txn_claims(decode_signed(token, keys, _TXN_TYPES))


def accept_txn(
    claims: TxnClaims,
    *,
    issuer: str,
    requirements: TxnRequirements,
    now: float,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
    is_revoked: TxnRevocationCheck | None = None,
) -> None:
    """What depends on the moment and the workload: time, issuer, trust
    domain, scopes, then revocation (by ``jti``, ``sid`` or subject, the access
    tokens' rules). ``is_revoked`` takes the claims (see ``RevocationSet``)."""
    leeway = min(max(leeway, 0), MAX_LEEWAY_SECONDS)
    if now > claims.exp + leeway:
        raise _reject(Reason.EXPIRED)
    if claims.iat > now + leeway:
        raise _reject(Reason.NOT_YET_VALID)
    if claims.iss != issuer:
        raise _reject(Reason.WRONG_ISSUER)
    if requirements.trust_domain not in claims.aud:
        raise _reject(Reason.WRONG_AUDIENCE)
    for scope in requirements.scopes:
        if scope not in claims.scope:
            raise _reject(Reason.MISSING_SCOPE)
    if is_revoked is not None and is_revoked(claims):
        raise _reject(Reason.REVOKED)


def verify_txn_token(
    token: str,
    *,
    keys: Mapping[str, VerificationKey],
    issuer: str,
    requirements: TxnRequirements,
    now: float,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
    is_revoked: TxnRevocationCheck | None = None,
) -> TxnClaims:
    """Accept a Txn-Token or raise :class:`TokenRejected` (the draft, section
    9.2: signature, trust domain, expiry; plus issuer, scopes and revocation).
    ``requirements.trust_domain`` is mandatory."""
    if not requirements.trust_domain:
        raise ValueError("a trust domain is required")
    claims = read_txn_token(token, keys)
    accept_txn(claims, issuer=issuer, requirements=requirements, now=now, leeway=leeway, is_revoked=is_revoked)
    return claims
