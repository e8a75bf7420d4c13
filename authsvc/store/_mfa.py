"""TOTP enrolments, recovery codes and MFA challenges."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from authsvc.domain.models import Challenge, RefreshTokenRecord, Session, TotpEnrolment
from authsvc.store import _convert as cv
from authsvc.store._base import Base, translated
from authsvc.store._sessions import _LIVE_OWNER, insert_token


class MfaMixin(Base):
    # MFA -------------------------------------------------------------------

    @translated
    async def totp(self, user_id: str) -> TotpEnrolment | None:
        row = await self._pool.fetchrow("SELECT * FROM totp_enrolments WHERE user_id = $1", uuid.UUID(user_id))
        return None if row is None else cv.totp(row)

    @translated
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

    @translated
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

    @translated
    async def create_challenge(self, challenge: Challenge, now: float) -> None:
        await self._pool.execute(
            "INSERT INTO mfa_challenges (id_hash, user_id, audiences, scopes, auth_time, created_at,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            challenge.id_hash, uuid.UUID(challenge.user_id), list(challenge.audiences),
            list(challenge.scopes), cv.ts(challenge.auth_time), cv.ts(now), cv.ts(challenge.expires_at),
        )  # fmt: skip

    @translated
    async def attempt_challenge(self, id_hash: bytes, now: float, max_attempts: int) -> Challenge | None:
        """Count one attempt (committed whatever the code turns out to be); give
        the challenge while it is open, unexpired and under its attempt limit."""
        row = await self._pool.fetchrow(
            "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id_hash = $1"
            " AND consumed_at IS NULL AND expires_at > $2 AND attempts < $3 RETURNING *",
            id_hash, cv.ts(now), max_attempts,
        )  # fmt: skip
        return None if row is None else cv.challenge(row)

    @translated
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
            status = await conn.execute(
                "WITH owner AS (" + _LIVE_OWNER + ")"  # noqa: S608 - constant fragments, no input
                " INSERT INTO sessions (id, user_id, subject, audiences, scopes, amr, acr, auth_time,"
                " created_at, expires_at, peer, user_agent, cert_thumbprint)"
                " SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM owner",
                uuid.UUID(session.id), uid, session.subject, list(session.audiences),
                list(session.scopes), list(session.amr), session.acr, cv.ts(session.auth_time),
                cv.ts(session.created_at), cv.ts(session.expires_at), session.peer, session.user_agent,
                session.cert_thumbprint,
            )  # fmt: skip
            if not status.endswith(" 1"):
                raise _CodeSpent()  # the user's sessions were revoked after the password was checked
            await insert_token(conn, token)
            return True


class _CodeSpent(Exception):
    pass
