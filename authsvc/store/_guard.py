"""Throttle counters and the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from authsvc.domain.throttle import ThrottleState

from . import _convert as cv
from ._base import Base, translated

T = TypeVar("T")


class GuardMixin(Base):
    # throttling ------------------------------------------------------------

    @translated
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

    @translated
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

    @translated
    async def audit(
        self, event: str, now: float, *, subject: str = "", session_id: str = "", peer: str = "", detail: str = ""
    ) -> None:
        await self._pool.execute(
            "INSERT INTO audit_log (at, event, subject, session_id, peer, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            cv.ts(now), event, subject, uuid.UUID(session_id) if session_id else None, peer, detail,
        )  # fmt: skip

    @translated
    async def audit_events(self, subject: str) -> list[str]:
        rows = await self._pool.fetch("SELECT event FROM audit_log WHERE subject = $1 ORDER BY id", subject)
        return [r["event"] for r in rows]


# Every sealed column: (kind, table, id column, kek id column, ciphertext column).
# Fixed names only: nothing here comes from input.
