"""The knobs of the domain, taken from settings once at start."""

from __future__ import annotations

from dataclasses import dataclass


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
    recovery_codes: int = 10

    @property
    def revocation_ttl(self) -> int:
        """How long a revocation must be remembered: until every access token it
        could cover has expired, leeway included."""
        return self.access_ttl + self.leeway + 1
