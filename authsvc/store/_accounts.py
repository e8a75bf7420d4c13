"""Users and service clients."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from authsvc.domain.models import Client, User
from authsvc.store import _convert as cv
from authsvc.store._base import Base, translated
from authsvc.store._sessions import revoke_subject_in


class AccountsMixin(Base):
    # users -----------------------------------------------------------------

    @translated
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

    @translated
    async def user_by_name(self, username: str) -> User | None:
        row = await self._pool.fetchrow(_USER + " WHERE u.username = $1", username)
        return None if row is None else cv.user(row)

    @translated
    async def user_by_id(self, user_id: str) -> User | None:
        row = await self._pool.fetchrow(_USER + " WHERE u.id = $1", uuid.UUID(user_id))
        return None if row is None else cv.user(row)

    @translated
    async def list_users(self) -> list[User]:
        return [cv.user(r) for r in await self._pool.fetch(_USER + " ORDER BY u.username")]

    @translated
    async def change_password(self, user_id: str, password_hash: str, now: float, revocation_expires: float) -> int:
        """New password and every session of the user revoked, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", uuid.UUID(user_id), password_hash)
            return await revoke_subject_in(conn, user_id, now, revocation_expires)

    @translated
    async def reset_mfa(self, user_id: str, now: float, revocation_expires: float) -> int:
        """Forget the TOTP enrolment and recovery codes, and revoke every session."""
        uid = uuid.UUID(user_id)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM totp_enrolments WHERE user_id = $1", uid)
            await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", uid)
            return await revoke_subject_in(conn, user_id, now, revocation_expires)

    @translated
    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._pool.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", uuid.UUID(user_id), password_hash
        )

    # clients ---------------------------------------------------------------

    @translated
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
    ) -> None:
        await self._pool.execute(
            "INSERT INTO clients (id, name, secret_hash, scopes, audiences, created_at, tls_san_uri, tls_thumbprint,"
            " exchange_audiences) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            client_id, name, secret_hash, list(scopes), list(audiences), cv.ts(now), tls_san_uri, tls_thumbprint,
            list(exchange_audiences),
        )  # fmt: skip

    @translated
    async def set_exchange_audiences(self, client: str, audiences: Sequence[str]) -> bool:
        """Replace the exchange policy of the client with this id or name;
        False when there is none."""
        done = await self._pool.fetchval(
            "UPDATE clients SET exchange_audiences = $2"
            " WHERE id = $1 OR (name = $1 AND NOT EXISTS (SELECT 1 FROM clients WHERE id = $1)) RETURNING 1",
            client, list(dict.fromkeys(audiences)),
        )  # fmt: skip
        return done is not None

    @translated
    async def client_by_id(self, client_id: str) -> Client | None:
        row = await self._pool.fetchrow("SELECT * FROM clients WHERE id = $1", client_id)
        return None if row is None else cv.client(row)

    @translated
    async def list_clients(self) -> list[Client]:
        return [cv.client(r) for r in await self._pool.fetch("SELECT * FROM clients ORDER BY name")]


_USER = (
    "SELECT u.*, (t.confirmed_at IS NOT NULL) AS mfa_enrolled"
    " FROM users u LEFT JOIN totp_enrolments t ON t.user_id = u.id"
)
