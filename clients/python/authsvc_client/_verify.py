"""The rules for accepting an access token, in one place.

authsvc's Verify RPC and the local :class:`TokenVerifier` both call
:func:`verify_access_token`, so the two cannot drift apart. The rules follow
RFC 8725 (JWT best practices), RFC 9068 (JWT access tokens) and RFC 8705
(certificate-bound tokens). Every rejection carries a :class:`Reason`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._jose import JoseFormatError, b64url_decode, json_object
from ._jwe import DecryptionError, decrypt_nested, is_encrypted
from ._keys import MAX_KID_LENGTH, VerificationKey

#: Tokens longer than this are refused before any parsing.
MAX_TOKEN_LENGTH = 8192
#: The leeway for exp, nbf and iat is capped here whatever the caller asks.
MAX_LEEWAY_SECONDS = 300
DEFAULT_LEEWAY_SECONDS = 30

# RFC 9068 section 2.1; media types compare case-insensitively (RFC 7515 4.1.9).
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# The only header members authsvc writes. Anything else (jwk, jku, x5u, x5c,
# crit, b64, zip, ...) is refused: we implement no extension, so none is safe.
_ALLOWED_HEADER = frozenset({"alg", "kid", "typ"})
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti")
#: NumericDates are whole seconds in Verify's answer (int64): a value that does
#: not fit, or a date before 1970, is no date authsvc signs, and is refused by
#: both verifiers alike rather than accepted by one and failing in the other.
MAX_NUMERIC_DATE = 2**63 - 1


class Reason(enum.Enum):
    """Why a token is not active; names match ``authsvc.v1.InactiveReason``."""

    MALFORMED = 1
    BAD_SIGNATURE = 2
    UNKNOWN_KEY = 3
    EXPIRED = 4
    NOT_YET_VALID = 5
    REVOKED = 6
    WRONG_ISSUER = 7
    WRONG_AUDIENCE = 8
    MISSING_SCOPE = 9
    CERT_MISMATCH = 10
    AUTH_TOO_OLD = 11
    WRONG_TYPE = 12
    NOT_ENCRYPTED = 13
    #: Delegated through more actors than ``Requirements.max_delegation_depth`` allows.
    DELEGATION_TOO_DEEP = 14


class TokenRejected(Exception):
    """The token must not be accepted; ``reason`` says why."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.name.lower())
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Actor:
    """The acting party of a delegated token (RFC 8693 section 4.1): ``sub``
    acts for the token's subject; ``act`` is whoever acted before it."""

    sub: str
    act: Actor | None = None

    @property
    def depth(self) -> int:
        """How many actors the chain holds, this one included."""
        depth, actor = 1, self.act
        while actor is not None:
            depth, actor = depth + 1, actor.act
        return depth


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The claims of an accepted access token (RFC 9068 section 2.2)."""

    iss: str
    sub: str
    aud: tuple[str, ...]
    exp: int
    iat: int
    nbf: int
    jti: str
    client_id: str = ""
    scope: tuple[str, ...] = ()
    sid: str = ""
    auth_time: int = 0
    amr: tuple[str, ...] = ()
    acr: str = ""
    cnf_x5t_s256: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: Not a claim: True when the token came as a nested JWT (JWE around the
    #: JWS), so that :attr:`Requirements.require_encrypted` can be applied.
    encrypted: bool = False
    #: Set on a delegated token (token exchange): who acts for ``sub``.
    act: Actor | None = None


@dataclass(frozen=True, slots=True)
class Requirements:
    """What the caller needs of a token. ``audience`` is required (RFC 8725 3.9)."""

    audience: str
    scopes: tuple[str, ...] = ()
    cert_thumbprint: str = ""  # base64url SHA-256 of the presenter's DER certificate
    max_auth_age: int = 0  # seconds; 0 means no limit
    #: Refuse a bare signed token (``NOT_ENCRYPTED``): only a nested JWT, whose
    #: contents no one on the way could read, is accepted.
    require_encrypted: bool = False
    #: None: delegated tokens are accepted. Else at most this many actors in
    #: the token's ``act`` chain; 0 refuses every delegated token
    #: (``DELEGATION_TOO_DEEP``).
    max_delegation_depth: int | None = None


#: Given accepted claims, say whether they were revoked (jti, session, subject).
RevocationCheck = Callable[[AccessClaims], bool]


def _reject(reason: Reason) -> TokenRejected:
    return TokenRejected(reason)


def _time(claims: Mapping[str, Any], name: str, required: bool = True) -> int:
    value = claims.get(name)
    if value is None and not required:
        return 0
    # bool is an int in Python; a NumericDate is never true or false. An int
    # is range-checked as it is: math.isfinite(10**400) raises OverflowError.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _reject(Reason.MALFORMED)
    if isinstance(value, float) and not math.isfinite(value):
        raise _reject(Reason.MALFORMED)
    seconds = int(value)  # fractions are allowed (RFC 7519 section 2) and dropped
    if not 0 <= seconds <= MAX_NUMERIC_DATE:
        raise _reject(Reason.MALFORMED)
    return seconds


def _text(value: Any) -> str:
    """A JSON string that is also valid Unicode text. JSON can spell a lone
    surrogate (\\ud800), which Python decodes but which no UTF-8 encoder (the
    Verify answer's protobuf among them) can write back."""
    if not isinstance(value, str):
        raise _reject(Reason.MALFORMED)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _reject(Reason.MALFORMED) from None
    return value


def _str(claims: Mapping[str, Any], name: str, required: bool = False) -> str:
    value = _text(claims.get(name, None if required else ""))
    if required and not value:
        raise _reject(Reason.MALFORMED)
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (_text(value),)
    if isinstance(value, list):
        return tuple(_text(v) for v in value)
    raise _reject(Reason.MALFORMED)


_NO_RAW: Mapping[str, Any] = MappingProxyType({})


#: An `act` chain deeper than this is refused as malformed: authsvc never
#: mints one (exchange.py stops at MAX_EXCHANGE_DEPTH), and the parse is
#: recursive.
MAX_ACT_DEPTH = 16


def _actor(value: Any, depth: int = 1) -> Actor | None:
    """RFC 8693 section 4.1: an object with the actor's ``sub`` and, for a
    chain, the previous actor's ``act``. Its other members are not ours to
    judge (the RFC lets an actor carry any claim that identifies it)."""
    if value is None:
        return None
    if not isinstance(value, dict) or depth > MAX_ACT_DEPTH:
        raise _reject(Reason.MALFORMED)
    sub = _text(value.get("sub"))  # the answer of Verify carries it: valid Unicode only
    if not sub:
        raise _reject(Reason.MALFORMED)
    return Actor(sub, _actor(value.get("act"), depth + 1))


def _parse_claims(payload: Mapping[str, Any], keep_raw: bool = True, encrypted: bool = False) -> AccessClaims:
    for name in _REQUIRED_CLAIMS:
        if name not in payload:
            raise _reject(Reason.MALFORMED)
    scope = _str(payload, "scope")
    amr = payload.get("amr", [])
    cnf = payload.get("cnf", {})
    if not isinstance(cnf, dict):
        raise _reject(Reason.MALFORMED)
    thumbprint = _text(cnf.get("x5t#S256", ""))
    return AccessClaims(
        iss=_str(payload, "iss", required=True),
        sub=_str(payload, "sub", required=True),
        aud=_strings(payload["aud"]),
        exp=_time(payload, "exp"),
        iat=_time(payload, "iat"),
        nbf=_time(payload, "nbf", required=False),
        jti=_str(payload, "jti", required=True),
        client_id=_str(payload, "client_id"),
        scope=tuple(scope.split()),
        sid=_str(payload, "sid"),
        auth_time=_time(payload, "auth_time", required=False),
        amr=_strings(amr),
        acr=_str(payload, "acr"),
        cnf_x5t_s256=thumbprint,
        raw=payload if keep_raw else _NO_RAW,
        encrypted=encrypted,
        act=_actor(payload.get("act")),
    )


#: Headers that passed every check below, as (kid, alg). Every token one key
#: signs has the same header, and reading it is a pure function of its text,
#: so a hit skips a JSON parse without skipping a rule. Bounded: a flood of
#: made-up headers only empties it.
_HEADERS: dict[str, tuple[str, str]] = {}
_HEADERS_MAX = 64


def _read_header(header_b64: str, types: frozenset[str] = _ACCESS_TOKEN_TYPES) -> tuple[str, str]:
    try:
        header = json_object(b64url_decode(header_b64))
    except JoseFormatError as exc:
        raise _reject(Reason.MALFORMED) from exc
    if not header.keys() <= _ALLOWED_HEADER:
        raise _reject(Reason.MALFORMED)
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in types:
        raise _reject(Reason.WRONG_TYPE)
    kid, alg = header.get("kid"), header.get("alg")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH or not isinstance(alg, str):
        raise _reject(Reason.MALFORMED)
    if types is not _ACCESS_TOKEN_TYPES:
        return kid, alg  # the cache below holds access-token headers only
    if len(_HEADERS) >= _HEADERS_MAX:
        _HEADERS.clear()
    _HEADERS[header_b64] = (kid, alg)
    return kid, alg


def decode_signed(
    token: str, keys: Mapping[str, VerificationKey], types: frozenset[str] | None = None
) -> dict[str, Any]:
    """Check a JWS compact token's form, header and signature; give its payload.

    Nothing from the token is trusted before the signature is: the key comes
    from ``keys`` by ``kid`` (a dictionary look-up only) and the algorithm from
    that key, never from the header (RFC 8725 sections 2.1, 3.1). ``types``
    are the accepted ``typ`` values (lower case; default: access tokens'):
    explicit typing keeps one kind of token from passing for another
    (RFC 8725 section 3.11).
    """
    # Length first (before any work), then ASCII: a compact JWS is base64url
    # and dots only, and everything below may assume so.
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise _reject(Reason.MALFORMED)
    parts = token.split(".")
    if len(parts) != 3:
        raise _reject(Reason.MALFORMED)
    header_b64, payload_b64, signature_b64 = parts
    if types is None:
        kid, alg = _HEADERS.get(header_b64) or _read_header(header_b64)
    else:
        kid, alg = _read_header(header_b64, types)
    try:
        payload = b64url_decode(payload_b64)  # decoded now, trusted only after the signature
        signature = b64url_decode(signature_b64)
    except JoseFormatError as exc:
        raise _reject(Reason.MALFORMED) from exc
    key = keys.get(kid)
    if key is None:
        raise _reject(Reason.UNKNOWN_KEY)
    if alg != key.alg:  # "none", HS256 with our public key, any swap: all end here
        raise _reject(Reason.BAD_SIGNATURE)
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    if not key.check(signing_input, signature):
        raise _reject(Reason.BAD_SIGNATURE)
    try:
        return json_object(payload)
    except JoseFormatError as exc:
        raise _reject(Reason.MALFORMED) from exc


def check_claims(
    claims: AccessClaims,
    *,
    issuer: str,
    requirements: Requirements,
    now: float,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
) -> None:
    """Apply the time, issuer, audience, scope, binding and auth-age rules."""
    leeway = min(max(leeway, 0), MAX_LEEWAY_SECONDS)
    if now > claims.exp + leeway:
        raise _reject(Reason.EXPIRED)
    if claims.nbf > now + leeway or claims.iat > now + leeway:
        raise _reject(Reason.NOT_YET_VALID)
    if claims.iss != issuer:
        raise _reject(Reason.WRONG_ISSUER)
    if requirements.audience not in claims.aud:
        raise _reject(Reason.WRONG_AUDIENCE)
    for scope in requirements.scopes:  # a subset test; no sets built per call
        if scope not in claims.scope:
            raise _reject(Reason.MISSING_SCOPE)
    if claims.cnf_x5t_s256 and claims.cnf_x5t_s256 != requirements.cert_thumbprint:
        raise _reject(Reason.CERT_MISMATCH)
    if requirements.max_auth_age > 0 and (
        not claims.auth_time or now - claims.auth_time > requirements.max_auth_age
    ):
        raise _reject(Reason.AUTH_TOO_OLD)
    if requirements.require_encrypted and not claims.encrypted:
        raise _reject(Reason.NOT_ENCRYPTED)
    if (
        requirements.max_delegation_depth is not None
        and claims.act is not None
        and claims.act.depth > requirements.max_delegation_depth
    ):
        raise _reject(Reason.DELEGATION_TOO_DEEP)


def verify_access_token(
    token: str,
    *,
    keys: Mapping[str, VerificationKey],
    issuer: str,
    requirements: Requirements,
    now: float,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
    is_revoked: RevocationCheck | None = None,
    decryption_keys: Mapping[str, Any] | None = None,
) -> AccessClaims:
    """Accept an access token or raise :class:`TokenRejected`.

    ``issuer`` and ``requirements.audience`` are mandatory; ``leeway`` (default
    30 s, capped at 300 s) applies to ``exp``, ``nbf`` and ``iat``. An
    encrypted (nested) token needs its recipient's key in ``decryption_keys``
    (kid -> jwcrypto JWK); the inner token then meets every rule above.
    """
    if not requirements.audience:
        raise ValueError("an audience is required")
    claims = read_access_token(token, keys, decryption_keys)
    accept(claims, issuer=issuer, requirements=requirements, now=now, leeway=leeway, is_revoked=is_revoked)
    return claims


def read_access_token(
    token: str,
    keys: Mapping[str, VerificationKey],
    decryption_keys: Mapping[str, Any] | None = None,
    *,
    keep_raw: bool = True,
) -> AccessClaims:
    """The part of verification that depends on the token alone: form, header,
    decryption, signature and claim types. Its result may be cached per token
    string; :func:`accept` must still run on every use. ``keep_raw=False``
    leaves ``raw`` empty: a cache of many claims then holds no dictionaries for
    the garbage collector to walk."""
    encrypted = isinstance(token, str) and len(token) <= MAX_TOKEN_LENGTH and token.isascii() and is_encrypted(token)
    if encrypted:
        if not decryption_keys:
            raise _reject(Reason.MALFORMED)
        try:
            token = decrypt_nested(token, decryption_keys)
        except DecryptionError as exc:
            raise _reject(Reason.MALFORMED) from exc
    return _parse_claims(decode_signed(token, keys), keep_raw, encrypted)


def accept(
    claims: AccessClaims,
    *,
    issuer: str,
    requirements: Requirements,
    now: float,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
    is_revoked: RevocationCheck | None = None,
) -> None:
    """The part that depends on the moment and the caller: time, issuer,
    audience, scopes, binding, auth age, then revocation."""
    check_claims(claims, issuer=issuer, requirements=requirements, now=now, leeway=leeway)
    if is_revoked is not None and is_revoked(claims):
        raise _reject(Reason.REVOKED)
