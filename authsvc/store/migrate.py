"""Apply numbered SQL migrations in order, each in a transaction, under an
advisory lock so that replicas starting together are safe (also through
PgBouncer in transaction mode: the lock lives in the transaction)."""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# Any fixed 64-bit number; it names "authsvc schema migration" to Postgres.
_LOCK_ID = 0x61757468_73766331
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every packaged migration, in order."""
    found = []
    for entry in resources.files("authsvc.store.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    # Numbers are handed out per line of work ahead of time, so one can land
    # before a lower one: gaps are allowed, and a lower number arriving later
    # is still applied (such migrations touch disjoint tables). Two files with
    # one number are not.
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


async def migrate(conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> list[str]:
    """Bring the schema up to date; give the names of the migrations applied.

    The lock is transaction-scoped (pg_advisory_xact_lock), taken again in
    each migration's transaction, and the migration re-checked under it: a
    session lock would need a session, which PgBouncer's transaction pooling
    does not give (lock and unlock could land on different server
    connections). Replicas starting together still apply each one once."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    applied: list[str] = []
    for version, name, sql in migrations():
        if version in done:
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            if await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", version):
                continue  # another replica applied it while we waited for the lock
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
        log.info("applied migration %s", name)
        applied.append(name)
    return applied
