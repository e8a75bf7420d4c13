"""Throttle counters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from authsvc.domain.identity.throttle import ThrottleState
from authsvc.store import _convert as cv
from authsvc.store._base import Base, translated

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
        ordered = sorted(set(keys))
        async with self._pool.acquire() as conn, conn.transaction():
            # One statement creates the missing counters and locks them all
            # (an upsert that changes nothing still takes the row lock), and
            # gives them back: a round trip fewer for every login than an
            # insert followed by SELECT ... FOR UPDATE, while the peer's shared
            # counter is held.
            rows = await conn.fetch(
                "INSERT INTO throttle (key, window_start) SELECT k, $2 FROM unnest($1::text[]) AS k ORDER BY k"
                " ON CONFLICT (key) DO UPDATE SET failures = throttle.failures RETURNING *",
                ordered, cv.ts(now),
            )  # fmt: skip
            writes, result = decide({row["key"]: cv.throttle(row) for row in rows})
            if writes:
                await conn.execute(
                    "UPDATE throttle SET failures = w.failures, window_start = w.window_start,"
                    " lockouts = w.lockouts, locked_until = w.locked_until"
                    " FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::int[], $5::timestamptz[])"
                    " AS w(key, failures, window_start, lockouts, locked_until) WHERE throttle.key = w.key",
                    list(writes), [s.failures for s in writes.values()],
                    [cv.ts(s.window_start) for s in writes.values()], [s.lockouts for s in writes.values()],
                    [cv.ts_or_none(s.locked_until) for s in writes.values()],
                )  # fmt: skip
            return result

    @translated
    async def prune_expired(self, now: float, keep: float = 86_400.0) -> dict[str, int]:
        """Forget what can no longer matter, ``keep`` seconds after it stopped
        mattering: ended sessions (their refresh tokens go with them), MFA
        challenges, and throttle counters with no window or lockout left."""
        before = cv.ts(now - keep)
        counts = {}
        async with self._pool.acquire() as conn:
            for name, sql in (
                ("sessions", "DELETE FROM sessions WHERE expires_at < $1"),
                ("mfa_challenges", "DELETE FROM mfa_challenges WHERE expires_at < $1"),
                (
                    "throttle",
                    "DELETE FROM throttle WHERE window_start < $1 AND (locked_until IS NULL OR locked_until < $1)",
                ),
            ):
                status = await conn.execute(sql, before)
                counts[name] = int(status.split()[-1])
        return counts

    @translated
    async def release_throttles(self, reset: Sequence[str] = (), give_back: Sequence[str] = ()) -> None:
        """After a success, in one statement: clear the counters in ``reset``,
        and give back the one attempt reserved on each of ``give_back``."""
        await self._pool.execute(
            "UPDATE throttle SET"
            " failures = CASE WHEN key = ANY($1) THEN 0 ELSE greatest(failures - 1, 0) END,"
            " lockouts = CASE WHEN key = ANY($1) THEN 0 ELSE lockouts END,"
            " locked_until = CASE WHEN key = ANY($1) THEN NULL ELSE locked_until END"
            " WHERE key = ANY($1) OR key = ANY($2)",
            list(reset), list(give_back),
        )  # fmt: skip

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


# Every sealed column: (kind, table, id column, kek id column, ciphertext column).
# Fixed names only: nothing here comes from input.
