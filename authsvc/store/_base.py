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
# UNAVAILABLE and may retry; nothing half-done is committed (a lost COMMIT
# reply is UNAVAILABLE too: it may have committed, so a retry must be safe,
# but it is never an OK that did not commit).
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
    # TargetServerAttributeNotMatched is one: with a multi-host URL and
    # target_session_attrs=read-write, no host is a primary (mid-failover).
    asyncpg.InternalClientError,
)

# The same by SQLSTATE class, for what has no class of its own above (PgBouncer
# speaks 08P01 for its own failures): connection exceptions (08), insufficient
# resources (53), operator intervention such as a crash or shutdown (57P),
# system errors such as I/O (58), and a write refused by a standby (25006:
# a connection that reached a demoted node, or a pooler aimed at a replica).
_UNAVAILABLE_CLASSES = ("08", "53", "57P", "58", "25006")
# Of those, the ones that mean "this connection's server is gone or no longer
# the primary": every pooled connection is then replaced, so that none is
# left talking to the old node and new ones find the new primary.
_FAILOVER_CLASSES = ("08", "57P", "25006")


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", "") or "")


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means "the database is not there right now"."""
    return isinstance(exc, _UNAVAILABLE) or _sqlstate(exc).startswith(_UNAVAILABLE_CLASSES)


def _is_failover(exc: BaseException) -> bool:
    return (
        isinstance(exc, (OSError, asyncpg.PostgresConnectionError, asyncpg.TargetServerAttributeNotMatched))
        or _sqlstate(exc).startswith(_FAILOVER_CLASSES)
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
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            if _is_failover(exc) and args and isinstance(args[0], Base):
                await args[0].expire_connections()
            raise StoreUnavailable() from exc

    return wrapper


class Base:
    """Holds the pool; each part of the store is a mixin over it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def expire_connections(self) -> None:
        """Replace every pooled connection on its next use (after a failover:
        idle ones may still point at the old primary; in-use ones are closed
        when released). New connections go where the URL's
        target_session_attrs says: the current primary."""
        await self._pool.expire_connections()


#: Seconds to open one connection (all hosts of a multi-host URL together):
#: a host that does not answer must not hold a call for asyncpg's default 60.
CONNECT_TIMEOUT = 5.0


def connect_options(dsn: str) -> dict[str, Any]:
    """asyncpg.connect options every connection of ours takes. authsvc writes
    on every path, so with several hosts in the URL it wants the primary:
    target_session_attrs=read-write unless the URL says otherwise (asyncpg's
    own default, "any", would as soon take a standby that refuses writes)."""
    options: dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
    if "target_session_attrs" not in dsn:
        options["target_session_attrs"] = "read-write"
    return options


async def notify(conn: Any, channel: str) -> None:
    await conn.execute("SELECT pg_notify($1, '')", channel)
