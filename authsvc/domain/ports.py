"""What the domain needs from storage, as a Protocol; store/postgres.py implements it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from authsvc.domain.admin.ports import AdminStore
from authsvc.domain.audit.chain import ChainRow, Checkpoint
from authsvc.domain.audit.query import AuditEntry, AuditFilter
from authsvc.domain.audit.record import AuditEvent
from authsvc.domain.identity.throttle import ThrottleState
from authsvc.domain.models import (
    CallInfo,
    Challenge,
    Client,
    RefreshTokenRecord,
    Revocation,
    Session,
    StoredKey,
    TotpEnrolment,
    User,
)
from authsvc.domain.tokens.encryption import AudienceKey

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RotateDecision:
    """The domain's verdict on one refresh, applied by the store in the same
    transaction that holds the row locks."""

    now: float
    outcome: str  # rotated | replayed | reused | rejected
    new_token: RefreshTokenRecord | None = None
    revoke_session_until: float | None = None
    peer: str = ""
    user_agent: str = ""
    session: Session | None = None
    reason: str = ""
    retry_after: float = 0.0
    #: With the grace window on: the successor pair, sealed, kept on the spent token.
    grace_sealed: tuple[str, bytes] | None = None
    #: An audit event written in the same transaction ("" for none).
    audit: str = ""
    #: The event in full (actor, outcome, request id, ...); wins over ``audit``.
    audit_event: AuditEvent | None = None


class Store(AdminStore, Protocol):
    async def ping(self) -> None: ...

    async def create_user(
        self, username: str, password_hash: str, scopes: Sequence[str], audiences: Sequence[str], now: float
    ) -> str: ...
    async def user_by_name(self, username: str) -> User | None: ...
    async def user_by_id(self, user_id: str) -> User | None: ...
    async def list_users(self) -> list[User]: ...
    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...
    async def change_password(self, user_id: str, password_hash: str, now: float, revocation_expires: float) -> int: ...
    async def reset_mfa(self, user_id: str, now: float, revocation_expires: float) -> int: ...

    async def create_client(
        self,
        client_id: str,
        name: str,
        secret_hash: bytes,
        scopes: Sequence[str],
        audiences: Sequence[str],
        now: float,
        *,
        tls_san_uri: str | None = None,
        tls_thumbprint: str | None = None,
        exchange_audiences: Sequence[str] = (),
    ) -> None: ...
    async def set_exchange_audiences(self, client: str, audiences: Sequence[str]) -> bool: ...
    async def client_by_id(self, client_id: str) -> Client | None: ...
    async def list_clients(self) -> list[Client]: ...

    async def signing_keys(self) -> list[StoredKey]: ...
    async def add_signing_key(self, key: StoredKey) -> bool: ...
    async def encryption_keys(self) -> list[StoredKey]: ...
    async def add_encryption_key(self, key: StoredKey) -> bool: ...
    async def audience_keys(self) -> list[AudienceKey]: ...
    async def set_audience_key(self, key: AudienceKey, now: float) -> None: ...
    async def remove_audience_key(self, audience: str) -> bool: ...
    async def promote_next_key(self, kid: str, now: float) -> tuple[str, str] | None: ...
    async def revoke_signing_key(self, kid: str, now: float, replacement: StoredKey, event_until: float) -> bool: ...
    async def withdraw_retired_keys(self, retired_before: float, now: float, event_until: float) -> list[str]: ...

    async def create_session(
        self,
        session: Session,
        token: RefreshTokenRecord,
        audit: str | AuditEvent = "",
        reset_throttles: Sequence[str] = (),
    ) -> bool: ...
    async def session(self, session_id: str) -> Session | None: ...
    async def sessions_of(self, subject: str, include_revoked: bool) -> list[Session]: ...
    async def refresh_token(self, token_id: str) -> tuple[RefreshTokenRecord, Session] | None: ...
    async def rotate_refresh(
        self, token_id: str, decide: Callable[[RefreshTokenRecord, Session, bool], RotateDecision]
    ) -> RotateDecision | None: ...

    async def revoke_session(
        self, session_id: str, now: float, expires_at: float, *, audit: AuditEvent | None = None
    ) -> bool: ...
    async def revoke_subject(
        self, subject: str, now: float, expires_at: float, *, audit: AuditEvent | None = None
    ) -> int: ...
    async def revoke_jti(
        self, jti: str, now: float, expires_at: float, *, audit: AuditEvent | None = None
    ) -> Revocation: ...
    async def revocations_after(
        self, cursor: int, gaps: Sequence[int], now: float, limit: int = 5_000
    ) -> list[Revocation]: ...
    async def prune_revocations(self, now: float) -> int: ...
    async def forget_grace_pairs(self, used_before: float) -> None: ...

    async def totp(self, user_id: str) -> TotpEnrolment | None: ...
    async def start_totp(self, user_id: str, kek_id: str, sealed: bytes, now: float) -> bool: ...
    async def confirm_totp(self, user_id: str, step: int, recovery_hashes: Sequence[bytes], now: float) -> bool: ...
    async def create_challenge(self, challenge: Challenge, now: float) -> None: ...
    async def attempt_challenge(self, id_hash: bytes, now: float, max_attempts: int) -> Challenge | None: ...
    async def complete_challenge(
        self,
        id_hash: bytes,
        *,
        totp_step: int | None,
        recovery_hash: bytes | None,
        session: Session,
        token: RefreshTokenRecord,
        now: float,
    ) -> bool: ...

    async def update_throttles(
        self,
        keys: Sequence[str],
        now: float,
        decide: Callable[[dict[str, ThrottleState]], tuple[dict[str, ThrottleState], T]],
    ) -> T: ...
    async def release_throttle(self, key: str, reset: bool) -> None: ...
    async def prune_expired(self, now: float, keep: float = 86_400.0) -> dict[str, int]: ...
    async def release_throttles(self, reset: Sequence[str] = (), give_back: Sequence[str] = ()) -> None: ...

    async def reseal_all(self, reseal: Callable[[str, str, str, bytes], tuple[str, bytes]]) -> dict[str, int]: ...

    async def audit(
        self,
        event: str | AuditEvent,
        now: float = 0.0,
        *,
        subject: str = "",
        session_id: str = "",
        peer: str = "",
        detail: str = "",
        actor: str = "",
        client_id: str = "",
        outcome: str = "",
        call: CallInfo | None = None,
    ) -> None: ...
    async def audit_page(
        self, filters: AuditFilter, after_seq: int | None, limit: int, newest_first: bool
    ) -> list[AuditEntry]: ...
    async def scan_audit_chain(
        self, start: Callable[[int, Checkpoint | None, Checkpoint | None], Callable[[ChainRow], None]], page: int = 2000
    ) -> None: ...
    async def prune_audit(self, before: float) -> int: ...
