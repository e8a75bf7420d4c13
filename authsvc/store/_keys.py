"""Signing keys, authsvc's encryption key, audiences' keys, and KEK re-sealing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authsvc.domain.models import StoredKey
from authsvc.domain.tokens.encryption import AudienceKey
from authsvc.store import _convert as cv
from authsvc.store._base import KEYS_CHANNEL, Base, notify, translated
from authsvc.store._sessions import append_revocation


class KeysMixin(Base):
    # signing keys ----------------------------------------------------------

    @translated
    async def signing_keys(self) -> list[StoredKey]:
        rows = await self._pool.fetch("SELECT * FROM signing_keys ORDER BY created_at")
        return [cv.stored_key(r) for r in rows]

    @translated
    async def add_signing_key(self, key: StoredKey) -> bool:
        """Insert ``key`` (active or next) unless another replica got there first."""
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await _insert_key(conn, key)
            if inserted:
                await notify(conn, KEYS_CHANNEL)
            return inserted

    @translated
    async def encryption_keys(self) -> list[StoredKey]:
        rows = await self._pool.fetch("SELECT *, NULL AS activated_at, NULL AS retired_at FROM encryption_keys")
        return [cv.stored_key(r) for r in rows]

    @translated
    async def add_encryption_key(self, key: StoredKey) -> bool:
        status = await self._pool.execute(
            "INSERT INTO encryption_keys (kid, alg, state, public_jwk, kek_id, private_sealed, created_at)"
            " VALUES ($1, $2, 'active', $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            key.kid, key.alg, key.public_jwk, key.kek_id, key.private_sealed, cv.ts(key.created_at),
        )  # fmt: skip
        return bool(status.endswith(" 1"))

    @translated
    async def audience_keys(self) -> list[AudienceKey]:
        rows = await self._pool.fetch("SELECT * FROM audience_keys ORDER BY audience")
        return [
            AudienceKey(r["audience"], r["kid"], r["alg"], r["public_jwk"], r["require_encrypted"]) for r in rows
        ]

    @translated
    async def set_audience_key(self, key: AudienceKey, now: float) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO audience_keys (audience, kid, alg, public_jwk, created_at, require_encrypted)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (audience)"
                " DO UPDATE SET kid = $2, alg = $3, public_jwk = $4, created_at = $5, require_encrypted = $6",
                key.audience, key.kid, key.alg, key.public_jwk, cv.ts(now), key.require_encrypted,
            )  # fmt: skip
            await notify(conn, KEYS_CHANNEL)

    @translated
    async def remove_audience_key(self, audience: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM audience_keys WHERE audience = $1", audience)
            await notify(conn, KEYS_CHANNEL)
            return bool(status.endswith(" 1"))

    @translated
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
            await notify(conn, KEYS_CHANNEL)
            return states["active"], kid

    @translated
    async def revoke_signing_key(self, kid: str, now: float, replacement: StoredKey, event_until: float) -> bool:
        """Withdraw ``kid``; if it was active, the next key (or ``replacement``
        when there is none) becomes active in the same transaction, and the
        withdrawal is logged (kind ``key``, kept until ``event_until``) for
        every replica and watcher to drop the key at once."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT state FROM signing_keys WHERE kid = $1 AND state <> 'revoked' FOR UPDATE", kid
            )
            if row is None:
                return False
            await conn.execute(
                "UPDATE signing_keys SET state = 'revoked', retired_at = $2, withdrawn_at = $2 WHERE kid = $1",
                kid, cv.ts(now),
            )  # fmt: skip
            await append_revocation(conn, "key", kid, now, event_until)
            if row["state"] == "active":
                status = await conn.execute(
                    "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE state = 'next'", cv.ts(now)
                )
                if not status.endswith(" 1"):
                    await _insert_key(conn, replacement)
            await notify(conn, KEYS_CHANNEL)
            return True

    @translated
    async def withdraw_retired_keys(self, retired_before: float, now: float, event_until: float) -> list[str]:
        """Log the withdrawal of every retired key whose publication ended
        (retired before ``retired_before``) and that was not logged yet. Each
        replica runs this; the row update lets exactly one log each key."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE signing_keys SET withdrawn_at = $2"
                " WHERE state = 'retired' AND withdrawn_at IS NULL AND retired_at < $1 RETURNING kid",
                cv.ts(retired_before), cv.ts(now),
            )  # fmt: skip
            for row in rows:
                await append_revocation(conn, "key", row["kid"], now, event_until)
            return [row["kid"] for row in rows]

    # key-encryption key rotation -------------------------------------------

    @translated
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


_SEALED = (
    ("signing-key", "signing_keys", "kid", "kek_id", "private_sealed"),
    ("encryption-key", "encryption_keys", "kid", "kek_id", "private_sealed"),
    ("totp", "totp_enrolments", "user_id", "kek_id", "secret_sealed"),
    ("refresh-grace", "refresh_tokens", "id", "grace_kek_id", "grace_sealed"),
)



async def _insert_key(conn: Any, key: StoredKey) -> bool:
    status = await conn.execute(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, kek_id, private_sealed, created_at, activated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        key.kid, key.alg, key.state, key.public_jwk, key.kek_id, key.private_sealed,
        cv.ts(key.created_at), cv.ts_or_none(key.activated_at),
    )  # fmt: skip
    return bool(status.endswith(" 1"))
