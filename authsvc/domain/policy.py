"""The knobs of the domain, taken from settings once at start."""

from __future__ import annotations

from dataclasses import dataclass, field

from authsvc.domain.identity.throttle import Limit


@dataclass(frozen=True, slots=True)
class Policy:
    issuer: str = "authsvc"
    #: authsvc's own audience: tokens for its self-service calls must carry it.
    self_audience: str = "authsvc"
    access_ttl: int = 300
    refresh_idle_ttl: int = 24 * 3600
    session_max_age: int = 7 * 24 * 3600
    leeway: int = 30
    signing_alg: str = "EdDSA"
    mfa_challenge_ttl: int = 300
    mfa_max_attempts: int = 5
    #: EnrollMFA and ConfirmMFA need a login at most this old.
    recent_auth: int = 900
    admin_scope: str = "authsvc:admin"
    #: A user's admin calls (AdminService) need a login at most this old.
    admin_recent_auth: int = 900
    #: After a client secret is rotated, the old one still works this long.
    client_secret_overlap: int = 24 * 3600
    recovery_codes: int = 10
    #: Refresh limits per session (absolute lifetime and idle timeout above).
    refresh_max_count: int = 10_000
    refresh_min_interval: float = 2.0
    #: Past this age of the login, Refresh asks for a new login (FAILED_PRECONDITION).
    reauth_age: int = 24 * 3600
    #: Seconds a spent refresh token may be retried for the same successor; 0 is off.
    refresh_grace: float = 0.0
    #: Automatic key rotation (0: only by hand); a new key is published this
    #: long before it signs, longer than any verifier caches a key set.
    key_rotation_interval: int = 30 * 24 * 3600
    key_publish_lead: int = 3600
    #: Nested JWT: every access token signed, then encrypted (see encryption.py).
    encrypt_tokens: bool = False
    #: Verify refuses bare signed tokens for every audience (NOT_ENCRYPTED);
    #: per audience, see ``authsvc audience set-key --require-encrypted``.
    require_encrypted: bool = False
    #: RFC 8705: tokens issued over mTLS carry cnf.x5t#S256 and are useless
    #: without the same certificate; refresh tokens likewise.
    bind_to_cert: bool = True
    account_limit: Limit = field(default_factory=lambda: Limit(5, 900.0, 30.0, 3600.0))
    #: Per peer address every password attempt counts, successes included.
    peer_limit: Limit = field(default_factory=lambda: Limit(300, 900.0, 30.0, 3600.0))
    mfa_limit: Limit = field(default_factory=lambda: Limit(10, 900.0, 60.0, 3600.0))
    #: Transaction Tokens: the trust domain they are valid in (their ``aud``)
    #: and their lifetime, at most the subject token's remaining one.
    trust_domain: str = "authsvc"
    txn_token_ttl: int = 60

    #: How often replicas reload keys without a notice; a retired key may
    #: still sign on a replica for this long.
    key_reload_interval: int = 30

    @property
    def retire_after(self) -> int:
        """A retired key stays published this long: the lifetime of the last
        token it may sign, on the slowest replica to hear of the rotation."""
        return self.key_reload_interval + self.access_ttl + self.leeway

    @property
    def revocation_ttl(self) -> int:
        """How long a revocation must be remembered: until every access token it
        could cover has expired, leeway included."""
        return self.access_ttl + self.leeway + 1
