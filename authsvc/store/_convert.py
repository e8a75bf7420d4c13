"""Rows to domain records, and epoch seconds to and from timestamptz."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authsvc.domain.identity.throttle import ThrottleState
from authsvc.domain.models import (
    Challenge,
    Client,
    RefreshTokenRecord,
    Revocation,
    Session,
    StoredKey,
    TotpEnrolment,
    User,
)


def ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def ts_or_none(epoch: float | None) -> datetime | None:
    return None if epoch is None else ts(epoch)


def epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def user(row: Any) -> User:
    return User(
        id=str(row["id"]),
        username=row["username"],
        password_hash=row["password_hash"],
        scopes=tuple(row["scopes"]),
        audiences=tuple(row["audiences"]),
        disabled=row["disabled"],
        mfa_enrolled=bool(row["mfa_enrolled"]),
        created_at=row["created_at"].timestamp(),
    )


def client(row: Any) -> Client:
    return Client(
        id=row["id"],
        name=row["name"],
        secret_hash=bytes(row["secret_hash"]),
        scopes=tuple(row["scopes"]),
        audiences=tuple(row["audiences"]),
        disabled=row["disabled"],
        tls_san_uri=row["tls_san_uri"],
        tls_thumbprint=row["tls_thumbprint"],
        exchange_audiences=tuple(row["exchange_audiences"]),
        created_at=row["created_at"].timestamp(),
        previous_secret_hash=None if row["previous_secret_hash"] is None else bytes(row["previous_secret_hash"]),
        previous_secret_expires_at=epoch(row["previous_secret_expires_at"]),
    )


def session(row: Any) -> Session:
    return Session(
        id=str(row["id"]),
        user_id=str(row["user_id"]),
        subject=row["subject"],
        audiences=tuple(row["audiences"]),
        scopes=tuple(row["scopes"]),
        amr=tuple(row["amr"]),
        acr=row["acr"],
        auth_time=row["auth_time"].timestamp(),
        created_at=row["created_at"].timestamp(),
        expires_at=row["expires_at"].timestamp(),
        last_refresh_at=epoch(row["last_refresh_at"]),
        refresh_count=row["refresh_count"],
        peer=row["peer"],
        user_agent=row["user_agent"],
        revoked_at=epoch(row["revoked_at"]),
        cert_thumbprint=row["cert_thumbprint"],
    )


def refresh_token(row: Any) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        id=row["id"],
        session_id=str(row["session_id"]),
        secret_hash=bytes(row["secret_hash"]),
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"].timestamp(),
        expires_at=row["expires_at"].timestamp(),
        used_at=epoch(row["used_at"]),
        replaced_by=row["replaced_by"],
        grace_kek_id=row["grace_kek_id"],
        grace_sealed=None if row["grace_sealed"] is None else bytes(row["grace_sealed"]),
    )


def totp(row: Any) -> TotpEnrolment:
    return TotpEnrolment(
        user_id=str(row["user_id"]),
        kek_id=row["kek_id"],
        secret_sealed=bytes(row["secret_sealed"]),
        confirmed=row["confirmed_at"] is not None,
        last_used_step=row["last_used_step"],
    )


def challenge(row: Any) -> Challenge:
    return Challenge(
        id_hash=bytes(row["id_hash"]),
        user_id=str(row["user_id"]),
        audiences=tuple(row["audiences"]),
        scopes=tuple(row["scopes"]),
        auth_time=row["auth_time"].timestamp(),
        expires_at=row["expires_at"].timestamp(),
        attempts=row["attempts"],
    )


def stored_key(row: Any) -> StoredKey:
    return StoredKey(
        kid=row["kid"],
        alg=row["alg"],
        state=row["state"],
        public_jwk=row["public_jwk"],
        kek_id=row["kek_id"],
        private_sealed=bytes(row["private_sealed"]),
        created_at=row["created_at"].timestamp(),
        activated_at=epoch(row["activated_at"]),
        retired_at=epoch(row["retired_at"]),
    )


def throttle(row: Any) -> ThrottleState:
    return ThrottleState(
        failures=row["failures"],
        window_start=row["window_start"].timestamp(),
        lockouts=row["lockouts"],
        locked_until=epoch(row["locked_until"]),
    )


def revocation(row: Any) -> Revocation:
    return Revocation(
        seq=row["seq"],
        kind=row["kind"],
        value=row["value"],
        revoked_at=row["revoked_at"].timestamp(),
        expires_at=row["expires_at"].timestamp(),
    )
