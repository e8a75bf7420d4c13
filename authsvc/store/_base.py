"""What every part of the Postgres store shares: the pool, the one place
asyncpg errors become AuthError subclasses, and the notification channels."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg

from authsvc import telemetry
from authsvc.errors import Conflict, StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")

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


def translated(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Translate asyncpg's errors, most specific first: a unique violation is a
    conflict; anything that means "the database is not there" is UNAVAILABLE."""

    span_name = f"store.{fn.__name__}"
    span_attributes = {"db.system": "postgresql", "db.operation": fn.__name__}

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            if telemetry.enabled():  # a child span per store call, only with tracing on
                with telemetry.span(span_name, **span_attributes):
                    return await fn(*args, **kwargs)
            return await fn(*args, **kwargs)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict() from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable() from exc

    return wrapper


class Base:
    """Holds the pool; each part of the store is a mixin over it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool


async def notify(conn: Any, channel: str) -> None:
    await conn.execute("SELECT pg_notify($1, '')", channel)
