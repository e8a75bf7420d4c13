"""Records the domain works with; all frozen."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the transport tells us about a caller; recorded, never trusted for authz."""

    peer: str = ""
    user_agent: str = ""
    cert_thumbprint: str = ""  # base64url SHA-256 of the client certificate, when mTLS
    cert_san_uris: tuple[str, ...] = ()  # URI SANs of that certificate (SPIFFE IDs)
    request_id: str = ""  # the caller's x-request-id, else one made for this call: ties logs to audit rows
    trace_id: str = ""  # the OpenTelemetry trace id (32 hex digits) when tracing is on


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    password_hash: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    disabled: bool
    mfa_enrolled: bool
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    name: str
    secret_hash: bytes
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    disabled: bool
    tls_san_uri: str | None = None
    tls_thumbprint: str | None = None
    created_at: float = 0.0
    #: After a rotation the previous secret still works until this time.
    previous_secret_hash: bytes | None = None
    previous_secret_expires_at: float | None = None
    #: Audiences this client may exchange a received token for (RFC 8693);
    #: none by default.
    exchange_audiences: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user_id: str
    subject: str
    audiences: tuple[str, ...]
    scopes: tuple[str, ...]
    amr: tuple[str, ...]
    acr: str
    auth_time: float
    created_at: float
    expires_at: float
    last_refresh_at: float | None
    refresh_count: int
    peer: str
    user_agent: str
    revoked_at: float | None
    cert_thumbprint: str = ""  # tokens of this session are bound to this certificate


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    id: str
    session_id: str
    secret_hash: bytes
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float
    used_at: float | None = None
    replaced_by: str | None = None
    grace_kek_id: str | None = None
    grace_sealed: bytes | None = None
    #: When the token that replaced this one was itself spent (None: unspent).
    successor_used_at: float | None = None


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    user_id: str
    kek_id: str
    secret_sealed: bytes
    confirmed: bool
    last_used_step: int


@dataclass(frozen=True, slots=True)
class Challenge:
    id_hash: bytes
    user_id: str
    audiences: tuple[str, ...]
    scopes: tuple[str, ...]
    auth_time: float
    expires_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    alg: str
    state: str  # next | active | retired | revoked
    public_jwk: str
    kek_id: str
    private_sealed: bytes
    created_at: float
    activated_at: float | None = None
    retired_at: float | None = None


@dataclass(frozen=True, slots=True)
class Revocation:
    seq: int
    kind: str  # jti | session | subject | key
    value: str
    revoked_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    scopes: tuple[str, ...]
    refresh_token: str = ""
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class MfaChallengeIssued:
    challenge_id: str
    methods: tuple[str, ...]
    expires_at: float
