"""What the admin use cases need: pages of users and clients; disabling,
deleting, rotating a client secret (domain/admin/ports.py)."""

from __future__ import annotations

import uuid

from authsvc.domain.models import Client, User
from authsvc.store import _convert as cv
from authsvc.store._accounts import _USER
from authsvc.store._base import Base, translated
from authsvc.store._sessions import revoke_subject_in


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class AdminMixin(Base):
    @translated
    async def users_after(self, username: str, limit: int) -> list[User]:
        rows = await self._pool.fetch(_USER + " WHERE u.username > $1 ORDER BY u.username LIMIT $2", username, limit)
        return [cv.user(r) for r in rows]

    @translated
    async def set_user_disabled(
        self, user_id: str, disabled: bool, now: float, revocation_expires: float
    ) -> int | None:
        uid = _uuid(user_id)
        if uid is None:
            return None
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("UPDATE users SET disabled = $2 WHERE id = $1", uid, disabled)
            if not status.endswith(" 1"):
                return None
            # In the same transaction: no session outlives the disable, and a
            # login racing it waits on the user row, then sees both.
            return await revoke_subject_in(conn, user_id, now, revocation_expires) if disabled else 0

    @translated
    async def delete_user(self, user_id: str, now: float, revocation_expires: float) -> int | None:
        uid = _uuid(user_id)
        if uid is None:
            return None
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", uid) is None:
                return None
            # The revocations outlive the rows: live access tokens stop at once.
            count = await revoke_subject_in(conn, user_id, now, revocation_expires)
            await conn.execute("DELETE FROM users WHERE id = $1", uid)
            return count

    @translated
    async def clients_after(self, name: str, limit: int) -> list[Client]:
        rows = await self._pool.fetch("SELECT * FROM clients WHERE name > $1 ORDER BY name LIMIT $2", name, limit)
        return [cv.client(r) for r in rows]

    @translated
    async def set_client_disabled(
        self, client_id: str, disabled: bool, now: float, revocation_expires: float
    ) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("UPDATE clients SET disabled = $2 WHERE id = $1", client_id, disabled)
            if not status.endswith(" 1"):
                return False
            if disabled:
                await revoke_subject_in(conn, client_id, now, revocation_expires)
            return True

    @translated
    async def rotate_client_secret(
        self, client_id: str, secret_hash: bytes, previous_expires_at: float | None
    ) -> bool:
        status = await self._pool.execute(
            "UPDATE clients SET secret_hash = $2, previous_secret_expires_at = $3,"
            " previous_secret_hash = CASE WHEN $3::timestamptz IS NULL THEN NULL ELSE secret_hash END WHERE id = $1",
            client_id, secret_hash, cv.ts_or_none(previous_expires_at),
        )  # fmt: skip
        return bool(status.endswith(" 1"))

    @translated
    async def delete_client(self, client_id: str, now: float, revocation_expires: float) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM clients WHERE id = $1", client_id)
            if not status.endswith(" 1"):
                return False
            await revoke_subject_in(conn, client_id, now, revocation_expires)
            return True
