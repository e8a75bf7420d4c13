"""What the client gives and takes, as small frozen records, and their
conversion from the generated messages. Secrets never appear in a ``repr``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from google.protobuf.timestamp_pb2 import Timestamp

from ._proto import auth_pb2 as pb
from ._verify import AccessClaims, Actor, Reason


@dataclass(frozen=True, slots=True)
class PasswordCredential:
    """A user's name and password, for :meth:`AuthClient.issue`."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ClientCredential:
    """A service client's id and secret (OAuth client credentials)."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenPair:
    """An access token (JWS, RFC 9068) and, for users, a refresh token."""

    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str = field(repr=False)  # empty for service clients
    scope: tuple[str, ...]
    session_id: str  # empty for service clients
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a password


@dataclass(frozen=True, slots=True)
class ExchangedToken:
    """ExchangeToken's answer (RFC 8693 section 2.2.1): a delegated access
    token (``token_type`` "Bearer") or a Txn-Token ("N_A")."""

    access_token: str = field(repr=False)
    issued_token_type: str
    token_type: str
    expires_in: int
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MfaChallenge:
    """Issue's answer for a user with MFA: pass ``challenge_id`` to ChallengeMFA."""

    challenge_id: str = field(repr=False)
    methods: tuple[str, ...]
    expires_at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The Verify RPC's answer (RFC 7662): ``claims`` when active, else ``reason``."""

    active: bool
    reason: Reason | None = None
    claims: AccessClaims | None = None


@dataclass(frozen=True, slots=True)
class MfaEnrolment:
    """EnrollMFA's answer: show the URI as a QR code, or the secret for typing."""

    otpauth_uri: str = field(repr=False)
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    subject: str
    audience: tuple[str, ...]
    scope: tuple[str, ...]
    amr: tuple[str, ...]
    auth_time: float
    created_at: float
    expires_at: float
    last_refresh_at: float | None
    refresh_count: int
    peer: str
    user_agent: str
    revoked_at: float | None


RevocationKind = Literal["jti", "session", "subject", "key", "unknown"]


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """One entry of the revocation log. ``kind`` is ``"unknown"`` for a kind
    this client does not know (a newer server): it cannot be applied."""

    seq: int
    kind: RevocationKind
    value: str
    revoked_at: float
    expires_at: float
    resume_cursor: int


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _optional_seconds(message: pb.SessionInfo, name: Literal["last_refresh_at", "revoked_at"]) -> float | None:
    return _seconds(getattr(message, name)) if message.HasField(name) else None


def token_pair(m: pb.TokenPair) -> TokenPair:
    return TokenPair(
        access_token=m.access_token,
        expires_in=m.expires_in,
        refresh_token=m.refresh_token,
        scope=tuple(m.scope),
        session_id=m.session_id,
        token_type=m.token_type or "Bearer",
    )


def exchanged_token(m: pb.ExchangeTokenResponse) -> ExchangedToken:
    return ExchangedToken(
        access_token=m.access_token, issued_token_type=m.issued_token_type, token_type=m.token_type,
        expires_in=m.expires_in, scope=tuple(m.scope),
    )  # fmt: skip


def mfa_challenge(m: pb.MFAChallenge) -> MfaChallenge:
    return MfaChallenge(challenge_id=m.challenge_id, methods=tuple(m.methods), expires_at=_seconds(m.expires_at))


def actor(m: pb.Actor) -> Actor:
    return Actor(m.sub, actor(m.act) if m.HasField("act") else None)


def actor_message(a: Actor) -> pb.Actor:
    """The proto form of an ``act`` chain (the server's Verify answer)."""
    return pb.Actor(sub=a.sub, act=actor_message(a.act) if a.act is not None else None)


def _act_claim(a: Actor) -> dict[str, object]:
    claim: dict[str, object] = {"sub": a.sub}
    if a.act is not None:
        claim["act"] = _act_claim(a.act)
    return claim


def claims(m: pb.Claims) -> AccessClaims:
    raw: dict[str, object] = {
        "iss": m.iss, "sub": m.sub, "aud": list(m.aud), "exp": m.exp, "iat": m.iat, "nbf": m.nbf,
        "jti": m.jti, "client_id": m.client_id, "scope": " ".join(m.scope), "sid": m.sid,
        "auth_time": m.auth_time, "amr": list(m.amr), "acr": m.acr,
    }  # fmt: skip
    if m.cnf_x5t_s256:
        raw["cnf"] = {"x5t#S256": m.cnf_x5t_s256}
    act = actor(m.act) if m.HasField("act") else None
    if act is not None:
        raw["act"] = _act_claim(act)
    return AccessClaims(
        iss=m.iss, sub=m.sub, aud=tuple(m.aud), exp=m.exp, iat=m.iat, nbf=m.nbf, jti=m.jti,
        client_id=m.client_id, scope=tuple(m.scope), sid=m.sid, auth_time=m.auth_time,
        amr=tuple(m.amr), acr=m.acr, cnf_x5t_s256=m.cnf_x5t_s256, raw=raw, act=act,
    )  # fmt: skip


def verify_result(m: pb.VerifyResponse) -> VerifyResult:
    if m.active:
        return VerifyResult(active=True, claims=claims(m.claims))
    try:
        reason = Reason(m.reason)
    except ValueError:  # a reason this client does not know: still not active
        reason = Reason.MALFORMED
    return VerifyResult(active=False, reason=reason)


def session_info(m: pb.SessionInfo) -> SessionInfo:
    return SessionInfo(
        session_id=m.session_id, subject=m.subject, audience=tuple(m.audience), scope=tuple(m.scope),
        amr=tuple(m.amr), auth_time=_seconds(m.auth_time), created_at=_seconds(m.created_at),
        expires_at=_seconds(m.expires_at), last_refresh_at=_optional_seconds(m, "last_refresh_at"),
        refresh_count=m.refresh_count, peer=m.peer, user_agent=m.user_agent,
        revoked_at=_optional_seconds(m, "revoked_at"),
    )  # fmt: skip


_KINDS: dict[int, RevocationKind] = {
    pb.RevocationEvent.KIND_JTI: "jti",
    pb.RevocationEvent.KIND_SESSION: "session",
    pb.RevocationEvent.KIND_SUBJECT: "subject",
    pb.RevocationEvent.KIND_KEY: "key",
}


def revocation_event(m: pb.RevocationEvent) -> RevocationEvent:
    return RevocationEvent(
        seq=m.seq,
        kind=_KINDS.get(m.kind, "unknown"),
        value=m.value,
        revoked_at=_seconds(m.revoked_at),
        expires_at=_seconds(m.expires_at),
        resume_cursor=m.resume_cursor,
    )
