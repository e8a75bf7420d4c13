"""The asyncpg implementation of the domain's store port.

asyncpg's errors become AuthError subclasses here and only here (see
``_base.translated``). Every multi-row change is one transaction; races are
settled with row locks and conditional updates, never in Python. One mixin
per part of the schema; this class puts them together.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from authsvc.errors import DatabaseUnreachable
from authsvc.store._accounts import AccountsMixin
from authsvc.store._admin import AdminMixin
from authsvc.store._audit import AuditMixin
from authsvc.store._base import KEYS_CHANNEL, NOTIFY_CHANNEL, connect_options, is_unavailable, translated
from authsvc.store._guard import GuardMixin
from authsvc.store._keys import KeysMixin
from authsvc.store._mfa import MfaMixin
from authsvc.store._sessions import SessionsMixin
from authsvc.store.migrate import migrate

log = logging.getLogger(__name__)
#: Seconds a shutdown waits for connections still in use before ending them.
CLOSE_TIMEOUT = 10.0

__all__ = ["KEYS_CHANNEL", "NOTIFY_CHANNEL", "PostgresStore"]


@dataclass(frozen=True)
class _Where:
    hosts: str
    first_host: str
    first_port: str
    database: str
    user: str


def _where(dsn: str) -> _Where:
    """Host(s), database and user of a URL, for an operator's message: never
    the password. libpq's defaults where the URL leaves them out."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    user = parts.username or query.get("user", [os.environ.get("PGUSER") or getpass.getuser()])[0]
    netloc = parts.netloc.rpartition("@")[2] or query.get("host", [os.environ.get("PGHOST", "localhost")])[0]
    first = netloc.split(",")[0]
    host, colon, port = first.rpartition(":")
    if not colon or "]" in port:  # no port, or the colons of a bare IPv6 address
        host, port = first, ""
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", [user])[0]
    return _Where(netloc, host.strip("[]") or "localhost", port or "5432", database, user)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Connection reset on release, minus the default's extra round trip
    (RESET ALL, UNLISTEN *, ...): the store never changes session state, and
    asyncpg still rolls back any transaction left open. A fifth of each
    refresh's round trips, measured +6-17% Refresh per second."""


class PostgresStore(AdminMixin, AccountsMixin, KeysMixin, SessionsMixin, MfaMixin, GuardMixin, AuditMixin):
    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 2, max_size: int = 16, transaction_pooling: bool = False
    ) -> PostgresStore:
        """A pool on ``dsn``, which may list several hosts (a Patroni cluster):
        each new connection goes to whichever is the primary then (see
        ``connect_options``). ``transaction_pooling``: the URL reaches
        PgBouncer in transaction mode, where a server connection is ours for
        one transaction only, so no prepared statement may outlive it."""
        options = connect_options(dsn)
        if transaction_pooling:
            options["statement_cache_size"] = 0
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, command_timeout=10, reset=_keep_session, **options
            )
        except asyncpg.InvalidCatalogNameError as exc:
            where = _where(dsn)
            raise DatabaseUnreachable(
                f"database {where.database!r} does not exist on {where.hosts}: create it "
                f"(createdb -h {where.first_host} -p {where.first_port} {where.database}) or name another"
            ) from exc
        except asyncpg.InvalidAuthorizationSpecificationError as exc:  # no such role, wrong password
            where = _where(dsn)
            raise DatabaseUnreachable(
                f"PostgreSQL on {where.hosts} refused role {where.user!r} ({type(exc).__name__}: no such role, "
                "a wrong password, or pg_hba.conf): create the role or fix the user and password"
            ) from exc
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise DatabaseUnreachable(
                f"cannot reach PostgreSQL at {_where(dsn).hosts} ({reason}): start it, or fix the host and port"
            ) from exc
        return cls(pool)

    def pool_use(self) -> dict[str, float]:
        """Connections of the pool: open, in use, and the most it may open."""
        size = self._pool.get_size()
        return {"open": size, "in_use": size - self._pool.get_idle_size(), "max": self._pool.get_max_size()}

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the pool; past ``timeout`` seconds, end whatever connections
        are still out (a call that never gave its connection back must not
        hold the shutdown for ever: Pool.close() alone waits without a bound)."""
        try:
            await asyncio.wait_for(self._pool.close(), timeout)
        except TimeoutError:
            log.warning("database connections still in use after %.0f s at shutdown: ending them", timeout)
            self._pool.terminate()

    @translated
    async def migrate(self) -> list[str]:
        async with self._pool.acquire() as conn:
            return await migrate(conn)

    @translated
    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")
