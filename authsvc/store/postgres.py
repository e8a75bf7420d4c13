"""The asyncpg implementation of the domain's store port.

asyncpg's errors become AuthError subclasses here and only here. Every
multi-row change is one transaction; races are settled with row locks and
conditional updates, never in Python.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import asyncpg

from authsvc.domain.encryption import AudienceKey
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
from authsvc.domain.ports import RotateDecision
from authsvc.domain.throttle import ThrottleState
from authsvc.errors import Conflict, StoreUnavailable

from . import _convert as cv
from .migrate import migrate

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

NOTIFY_CHANNEL = "authsvc_revocations"
KEYS_CHANNEL = "authsvc_keys"

# Errors that mean "the database is not there right now": the caller gets
# UNAVAILABLE and may retry; nothing half-done is committed.
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.QueryCanceledError,
    # 55xxx: the database exists but will not take us now (not accepting
    # connections, lock not available): transient, so retry later.
    asyncpg.ObjectNotInPrerequisiteStateError,
    # A pooled connection the server killed can surface as a protocol-state
    # error on its next use; the pool replaces it, so this too is transient.
    asyncpg.InternalClientError,
)

_USER = (
    "SELECT u.*, (t.confirmed_at IS NOT NULL) AS mfa_enrolled"
    " FROM users u LEFT JOIN totp_enrolments t ON t.user_id = u.id"
)


def _translated(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict() from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable() from exc

    return wrapper


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 16) -> PostgresStore:
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, command_timeout=10
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable() from exc
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @_translated
    async def migrate(self) -> list[str]:
        async with self._pool.acquire() as conn:
            return await migrate(conn)

    @_translated
    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    # users -----------------------------------------------------------------

    @_translated
    async def create_user(
        self, username: str, password_hash: str, scopes: Sequence[str], audiences: Sequence[str], now: float
    ) -> str:
        user_id = uuid.uuid4()
        await self._pool.execute(
            "INSERT INTO users (id, username, password_hash, scopes, audiences, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            user_id, username, password_hash, list(scopes), list(audiences), cv.ts(now),
        )  # fmt: skip
        return str(user_id)

    @_translated
    async def user_by_name(self, username: str) -> User | None:
        row = await self._pool.fetchrow(_USER + " WHERE u.username = $1", username)
        return None if row is None else cv.user(row)

    @_translated
    async def user_by_id(self, user_id: str) -> User | None:
        row = await self._pool.fetchrow(_USER + " WHERE u.id = $1", uuid.UUID(user_id))
        return None if row is None else cv.user(row)

    @_translated
    async def list_users(self) -> list[User]:
        return [cv.user(r) for r in await self._pool.fetch(_USER + " ORDER BY u.username")]

    @_translated
    async def change_password(self, user_id: str, password_hash: str, now: float, revocation_expires: float) -> int:
        """New password and every session of the user revoked, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", uuid.UUID(user_id), password_hash)
            return await _revoke_subject(conn, user_id, now, revocation_expires)

    @_translated
    async def reset_mfa(self, user_id: str, now: float, revocation_expires: float) -> int:
        """Forget the TOTP enrolment and recovery codes, and revoke every session."""
        uid = uuid.UUID(user_id)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM totp_enrolments WHERE user_id = $1", uid)
            await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", uid)
            return await _revoke_subject(conn, user_id, now, revocation_expires)

    @_translated
    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._pool.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", uuid.UUID(user_id), password_hash
        )

    # clients ---------------------------------------------------------------

    @_translated
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
    ) -> None:
        await self._pool.execute(
            "INSERT INTO clients (id, name, secret_hash, scopes, audiences, created_at, tls_san_uri, tls_thumbprint)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            client_id, name, secret_hash, list(scopes), list(audiences), cv.ts(now), tls_san_uri, tls_thumbprint,
        )  # fmt: skip

    @_translated
    async def client_by_id(self, client_id: str) -> Client | None:
        row = await self._pool.fetchrow("SELECT * FROM clients WHERE id = $1", client_id)
        return None if row is None else cv.client(row)

    @_translated
    async def list_clients(self) -> list[Client]:
        return [cv.client(r) for r in await self._pool.fetch("SELECT * FROM clients ORDER BY name")]

    # signing keys ----------------------------------------------------------

    @_translated
    async def signing_keys(self) -> list[StoredKey]:
        rows = await self._pool.fetch("SELECT * FROM signing_keys ORDER BY created_at")
        return [cv.stored_key(r) for r in rows]

    @_translated
    async def add_signing_key(self, key: StoredKey) -> bool:
        """Insert ``key`` (active or next) unless another replica got there first."""
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await _insert_key(conn, key)
            if inserted:
                await conn.execute("SELECT pg_notify($1, '')", KEYS_CHANNEL)
            return inserted

    @_translated
    async def encryption_keys(self) -> list[StoredKey]:
        rows = await self._pool.fetch("SELECT *, NULL AS activated_at, NULL AS retired_at FROM encryption_keys")
        return [cv.stored_key(r) for r in rows]

    @_translated
    async def add_encryption_key(self, key: StoredKey) -> bool:
        status = await self._pool.execute(
            "INSERT INTO encryption_keys (kid, alg, state, public_jwk, kek_id, private_sealed, created_at)"
            " VALUES ($1, $2, 'active', $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            key.kid, key.alg, key.public_jwk, key.kek_id, key.private_sealed, cv.ts(key.created_at),
        )  # fmt: skip
        return bool(status.endswith(" 1"))

    @_translated
    async def audience_keys(self) -> list[AudienceKey]:
        rows = await self._pool.fetch("SELECT * FROM audience_keys ORDER BY audience")
        return [AudienceKey(r["audience"], r["kid"], r["alg"], r["public_jwk"]) for r in rows]

    @_translated
    async def set_audience_key(self, key: AudienceKey, now: float) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO audience_keys (audience, kid, alg, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (audience) DO UPDATE SET kid = $2, alg = $3, public_jwk = $4, created_at = $5",
                key.audience, key.kid, key.alg, key.public_jwk, cv.ts(now),
            )  # fmt: skip
            await conn.execute("SELECT pg_notify($1, '')", KEYS_CHANNEL)

    @_translated
    async def remove_audience_key(self, audience: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM audience_keys WHERE audience = $1", audience)
            await conn.execute("SELECT pg_notify($1, '')", KEYS_CHANNEL)
            return bool(status.endswith(" 1"))

    @_translated
    async def promote_next_key(self, kid: str, now: float) -> tuple[str, str] | None:
        """next -> active, active -> retired, atomically; (retired, activated)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT kid, state FROM signing_keys WHERE state IN ('active', 'next') FOR UPDATE"
            )
            states = {r["state"]: r["kid"] for r in rows}
            if states.get("next") != kid or "active" not in states:
                return None
            await conn.execute(
                "UPDATE signing_keys SET state = 'retired', retired_at = $2 WHERE kid = $1",
                states["active"], cv.ts(now),
            )  # fmt: skip
            await conn.execute(
                "UPDATE signing_keys SET state = 'active', activated_at = $2 WHERE kid = $1", kid, cv.ts(now)
            )
            await conn.execute("SELECT pg_notify($1, '')", KEYS_CHANNEL)
            return states["active"], kid

    @_translated
    async def revoke_signing_key(self, kid: str, now: float, replacement: StoredKey) -> bool:
        """Withdraw ``kid``; if it was active, the next key (or ``replacement``
        when there is none) becomes active in the same transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT state FROM signing_keys WHERE kid = $1 AND state <> 'revoked' FOR UPDATE", kid
            )
            if row is None:
                return False
            await conn.execute(
                "UPDATE signing_keys SET state = 'revoked', retired_at = $2 WHERE kid = $1", kid, cv.ts(now)
            )
            if row["state"] == "active":
                status = await conn.execute(
                    "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE state = 'next'", cv.ts(now)
                )
                if not status.endswith(" 1"):
                    await _insert_key(conn, replacement)
            await conn.execute("SELECT pg_notify($1, '')", KEYS_CHANNEL)
            return True

    # sessions and refresh tokens ------------------------------------------

    @_translated
    async def create_session(self, session: Session, token: RefreshTokenRecord) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO sessions (id, user_id, subject, audiences, scopes, amr, acr, auth_time,"
                " created_at, expires_at, peer, user_agent, cert_thumbprint)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                uuid.UUID(session.id), uuid.UUID(session.user_id), session.subject,
                list(session.audiences), list(session.scopes), list(session.amr), session.acr,
                cv.ts(session.auth_time), cv.ts(session.created_at), cv.ts(session.expires_at),
                session.peer, session.user_agent, session.cert_thumbprint,
            )  # fmt: skip
            await _insert_token(conn, token)

    @_translated
    async def session(self, session_id: str) -> Session | None:
        row = await self._pool.fetchrow("SELECT * FROM sessions WHERE id = $1", uuid.UUID(session_id))
        return None if row is None else cv.session(row)

    @_translated
    async def sessions_of(self, subject: str, include_revoked: bool) -> list[Session]:
        rows = await self._pool.fetch(
            "SELECT * FROM sessions WHERE subject = $1 AND ($2 OR revoked_at IS NULL) ORDER BY created_at",
            subject, include_revoked,
        )  # fmt: skip
        return [cv.session(r) for r in rows]

    @_translated
    async def refresh_token(self, token_id: str) -> tuple[RefreshTokenRecord, Session] | None:
        row = await self._pool.fetchrow("SELECT * FROM refresh_tokens WHERE id = $1", token_id)
        if row is None:
            return None
        srow = await self._pool.fetchrow("SELECT * FROM sessions WHERE id = $1", row["session_id"])
        assert srow is not None  # a foreign key guarantees it
        return cv.refresh_token(row), cv.session(srow)

    @_translated
    async def rotate_refresh(
        self, token_id: str, decide: Callable[[RefreshTokenRecord, Session], RotateDecision]
    ) -> RotateDecision | None:
        """Lock the token and its session, let the domain decide, apply it, all
        in one transaction: two uses of one token serialise on the row lock,
        and the second sees the first one's ``used_at``."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM refresh_tokens WHERE id = $1 FOR UPDATE", token_id)
            if row is None:
                return None
            srow = await conn.fetchrow("SELECT * FROM sessions WHERE id = $1 FOR UPDATE", row["session_id"])
            assert srow is not None  # a foreign key guarantees it
            decision = decide(cv.refresh_token(row), cv.session(srow))
            if decision.revoke_session_until is not None:
                await _revoke_session(conn, srow["id"], decision.revoke_session_until, decision.now)
            if decision.new_token is not None:
                new = decision.new_token
                kek_id, sealed = decision.grace_sealed or (None, None)
                await conn.execute(
                    "UPDATE refresh_tokens SET used_at = $2, replaced_by = $3, grace_kek_id = $4,"
                    " grace_sealed = $5 WHERE id = $1",
                    token_id, cv.ts(decision.now), new.id, kek_id, sealed,
                )  # fmt: skip
                await _insert_token(conn, new)
                await conn.execute(
                    "UPDATE sessions SET last_refresh_at = $2, refresh_count = refresh_count + 1,"
                    " peer = $3, user_agent = $4 WHERE id = $1",
                    srow["id"], cv.ts(decision.now), decision.peer, decision.user_agent,
                )  # fmt: skip
            return decision

    # revocation ------------------------------------------------------------

    @_translated
    async def revoke_session(self, session_id: str, now: float, expires_at: float) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            return await _revoke_session(conn, uuid.UUID(session_id), expires_at, now)

    @_translated
    async def revoke_subject(self, subject: str, now: float, expires_at: float) -> int:
        """Revoke every live session of ``subject`` and cut its session-less tokens."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await _revoke_subject(conn, subject, now, expires_at)

    @_translated
    async def revoke_jti(self, jti: str, now: float, expires_at: float) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await _append_revocation(conn, "jti", jti, now, expires_at)

    @_translated
    async def revocations_after(self, cursor: int, gaps: Sequence[int], now: float) -> list[Revocation]:
        rows = await self._pool.fetch(
            "SELECT * FROM revocations WHERE (seq > $1 OR seq = ANY($2::bigint[])) AND expires_at > $3"
            " ORDER BY seq",
            cursor, list(gaps), cv.ts(now),
        )  # fmt: skip
        return [cv.revocation(r) for r in rows]

    @_translated
    async def forget_grace_pairs(self, used_before: float) -> None:
        """Drop sealed successor pairs once their grace window is over."""
        await self._pool.execute(
            "UPDATE refresh_tokens SET grace_kek_id = NULL, grace_sealed = NULL"
            " WHERE grace_sealed IS NOT NULL AND used_at < $1",
            cv.ts(used_before),
        )

    @_translated
    async def prune_revocations(self, now: float) -> int:
        status = await self._pool.execute("DELETE FROM revocations WHERE expires_at <= $1", cv.ts(now))
        return int(status.split()[-1])

    # MFA -------------------------------------------------------------------

    @_translated
    async def totp(self, user_id: str) -> TotpEnrolment | None:
        row = await self._pool.fetchrow("SELECT * FROM totp_enrolments WHERE user_id = $1", uuid.UUID(user_id))
        return None if row is None else cv.totp(row)

    @_translated
    async def start_totp(self, user_id: str, kek_id: str, sealed: bytes, now: float) -> bool:
        """Store a new unconfirmed secret; False when a confirmed one exists."""
        status = await self._pool.execute(
            "INSERT INTO totp_enrolments (user_id, kek_id, secret_sealed, created_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE"
            " SET kek_id = $2, secret_sealed = $3, created_at = $4, last_used_step = -1"
            " WHERE totp_enrolments.confirmed_at IS NULL",
            uuid.UUID(user_id), kek_id, sealed, cv.ts(now),
        )  # fmt: skip
        return bool(status.endswith(" 1"))

    @_translated
    async def confirm_totp(self, user_id: str, step: int, recovery_hashes: Sequence[bytes], now: float) -> bool:
        uid = uuid.UUID(user_id)
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE totp_enrolments SET confirmed_at = $2, last_used_step = $3"
                " WHERE user_id = $1 AND confirmed_at IS NULL AND last_used_step < $3",
                uid, cv.ts(now), step,
            )  # fmt: skip
            if not status.endswith(" 1"):
                return False
            await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", uid)
            await conn.executemany(
                "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)",
                [(uid, h) for h in recovery_hashes],
            )
            return True

    @_translated
    async def create_challenge(self, challenge: Challenge, now: float) -> None:
        await self._pool.execute(
            "INSERT INTO mfa_challenges (id_hash, user_id, audiences, scopes, auth_time, created_at,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            challenge.id_hash, uuid.UUID(challenge.user_id), list(challenge.audiences),
            list(challenge.scopes), cv.ts(challenge.auth_time), cv.ts(now), cv.ts(challenge.expires_at),
        )  # fmt: skip

    @_translated
    async def attempt_challenge(self, id_hash: bytes, now: float, max_attempts: int) -> Challenge | None:
        """Count one attempt (committed whatever the code turns out to be); give
        the challenge while it is open, unexpired and under its attempt limit."""
        row = await self._pool.fetchrow(
            "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id_hash = $1"
            " AND consumed_at IS NULL AND expires_at > $2 AND attempts < $3 RETURNING *",
            id_hash, cv.ts(now), max_attempts,
        )  # fmt: skip
        return None if row is None else cv.challenge(row)

    @_translated
    async def complete_challenge(
        self,
        id_hash: bytes,
        *,
        totp_step: int | None,
        recovery_hash: bytes | None,
        session: Session,
        token: RefreshTokenRecord,
        now: float,
    ) -> bool:
        """Spend the challenge and the code, and open the session, atomically.
        False when any of them was spent meanwhile (a replay lost the race)."""
        try:
            return await self._complete_challenge(id_hash, totp_step, recovery_hash, session, token, now)
        except _CodeSpent:
            return False

    async def _complete_challenge(
        self,
        id_hash: bytes,
        totp_step: int | None,
        recovery_hash: bytes | None,
        session: Session,
        token: RefreshTokenRecord,
        now: float,
    ) -> bool:
        uid = uuid.UUID(session.user_id)
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE mfa_challenges SET consumed_at = $2 WHERE id_hash = $1 AND consumed_at IS NULL",
                id_hash, cv.ts(now),
            )  # fmt: skip
            if not status.endswith(" 1"):
                return False
            if totp_step is not None:
                status = await conn.execute(
                    "UPDATE totp_enrolments SET last_used_step = $2"
                    " WHERE user_id = $1 AND last_used_step < $2 AND confirmed_at IS NOT NULL",
                    uid, totp_step,
                )  # fmt: skip
            else:
                status = await conn.execute(
                    "UPDATE recovery_codes SET used_at = $3"
                    " WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                    uid, recovery_hash, cv.ts(now),
                )  # fmt: skip
            if not status.endswith(" 1"):
                # The code was spent by a concurrent call: raising rolls back
                # the consume above as well.
                raise _CodeSpent()
            await conn.execute(
                "INSERT INTO sessions (id, user_id, subject, audiences, scopes, amr, acr, auth_time,"
                " created_at, expires_at, peer, user_agent, cert_thumbprint)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                uuid.UUID(session.id), uid, session.subject, list(session.audiences),
                list(session.scopes), list(session.amr), session.acr, cv.ts(session.auth_time),
                cv.ts(session.created_at), cv.ts(session.expires_at), session.peer, session.user_agent,
                session.cert_thumbprint,
            )  # fmt: skip
            await _insert_token(conn, token)
            return True

    # key-encryption key rotation -------------------------------------------

    @_translated
    async def reseal_all(self, reseal: Callable[[str, str, str, bytes], tuple[str, bytes]]) -> dict[str, int]:
        """Re-encrypt every sealed secret in one transaction: all under the new
        KEK, or (on any failure) none. ``reseal(kind, row_id, kek_id, sealed)``."""
        counts: dict[str, int] = {}
        async with self._pool.acquire() as conn, conn.transaction():
            for kind, table, id_col, kek_col, blob_col in _SEALED:
                rows = await conn.fetch(
                    f"SELECT {id_col} AS id, {kek_col} AS kek_id, {blob_col} AS sealed FROM {table}"  # noqa: S608
                    f" WHERE {blob_col} IS NOT NULL FOR UPDATE"
                )
                for row in rows:
                    kek_id, sealed = reseal(kind, str(row["id"]), row["kek_id"], bytes(row["sealed"]))
                    await conn.execute(
                        f"UPDATE {table} SET {kek_col} = $2, {blob_col} = $3 WHERE {id_col} = $1",  # noqa: S608
                        row["id"], kek_id, sealed,
                    )  # fmt: skip
                counts[kind] = len(rows)
        return counts

    # throttling ------------------------------------------------------------

    @_translated
    async def update_throttles(
        self,
        keys: Sequence[str],
        now: float,
        decide: Callable[[dict[str, ThrottleState]], tuple[dict[str, ThrottleState], T]],
    ) -> T:
        """Lock the counters of ``keys`` (in a fixed order, so two calls cannot
        deadlock), let the domain decide, write what it changed."""
        async with self._pool.acquire() as conn, conn.transaction():
            states: dict[str, ThrottleState] = {}
            for key in sorted(set(keys)):
                await conn.execute(
                    "INSERT INTO throttle (key, window_start) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    key, cv.ts(now),
                )  # fmt: skip
                row = await conn.fetchrow("SELECT * FROM throttle WHERE key = $1 FOR UPDATE", key)
                assert row is not None
                states[key] = cv.throttle(row)
            writes, result = decide(states)
            for key, state in writes.items():
                await conn.execute(
                    "UPDATE throttle SET failures = $2, window_start = $3, lockouts = $4, locked_until = $5"
                    " WHERE key = $1",
                    key, state.failures, cv.ts(state.window_start), state.lockouts,
                    cv.ts_or_none(state.locked_until),
                )  # fmt: skip
            return result

    @_translated
    async def release_throttle(self, key: str, reset: bool) -> None:
        """Give back one reserved attempt, or (``reset``) clear the counter."""
        if reset:
            await self._pool.execute(
                "UPDATE throttle SET failures = 0, lockouts = 0, locked_until = NULL WHERE key = $1", key
            )
        else:
            await self._pool.execute(
                "UPDATE throttle SET failures = greatest(failures - 1, 0) WHERE key = $1", key
            )

    # audit -----------------------------------------------------------------

    @_translated
    async def audit(
        self, event: str, now: float, *, subject: str = "", session_id: str = "", peer: str = "", detail: str = ""
    ) -> None:
        await self._pool.execute(
            "INSERT INTO audit_log (at, event, subject, session_id, peer, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            cv.ts(now), event, subject, uuid.UUID(session_id) if session_id else None, peer, detail,
        )  # fmt: skip

    @_translated
    async def audit_events(self, subject: str) -> list[str]:
        rows = await self._pool.fetch("SELECT event FROM audit_log WHERE subject = $1 ORDER BY id", subject)
        return [r["event"] for r in rows]


# Every sealed column: (kind, table, id column, kek id column, ciphertext column).
# Fixed names only: nothing here comes from input.
_SEALED = (
    ("signing-key", "signing_keys", "kid", "kek_id", "private_sealed"),
    ("encryption-key", "encryption_keys", "kid", "kek_id", "private_sealed"),
    ("totp", "totp_enrolments", "user_id", "kek_id", "secret_sealed"),
    ("refresh-grace", "refresh_tokens", "id", "grace_kek_id", "grace_sealed"),
)


class _CodeSpent(Exception):
    pass


async def _insert_key(conn: Any, key: StoredKey) -> bool:
    status = await conn.execute(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, kek_id, private_sealed, created_at, activated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        key.kid, key.alg, key.state, key.public_jwk, key.kek_id, key.private_sealed,
        cv.ts(key.created_at), cv.ts_or_none(key.activated_at),
    )  # fmt: skip
    return bool(status.endswith(" 1"))


async def _insert_token(conn: Any, token: RefreshTokenRecord) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (id, session_id, secret_hash, scopes, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        token.id, uuid.UUID(token.session_id), token.secret_hash, list(token.scopes),
        cv.ts(token.created_at), cv.ts(token.expires_at),
    )  # fmt: skip


async def _append_revocation(conn: Any, kind: str, value: str, now: float, expires_at: float) -> None:
    await conn.execute(
        "INSERT INTO revocations (kind, value, revoked_at, expires_at) VALUES ($1, $2, $3, $4)",
        kind, value, cv.ts(now), cv.ts(expires_at),
    )  # fmt: skip
    # A latency shortcut only: readers also reconcile by cursor on a timer.
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


async def _revoke_subject(conn: Any, subject: str, now: float, expires_at: float) -> int:
    rows = await conn.fetch("SELECT id FROM sessions WHERE subject = $1 AND revoked_at IS NULL FOR UPDATE", subject)
    for row in rows:
        await _revoke_session(conn, row["id"], expires_at, now)
    await _append_revocation(conn, "subject", subject, now, expires_at)
    return len(rows)


async def _revoke_session(conn: Any, session_id: uuid.UUID, expires_at: float, now: float) -> bool:
    status = await conn.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", session_id, cv.ts(now)
    )
    if not status.endswith(" 1"):
        return False
    await _append_revocation(conn, "session", str(session_id), now, expires_at)
    return True
