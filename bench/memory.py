"""Server memory at rest and with many revocations in its in-memory set.

A fresh database and a fresh server, RSS read when idle (after one Verify).
Then ``count`` revocations arrive as a busy deployment sends them: in
batches of BATCH rows written to the revocation log (the rows Revoke writes:
kind jti, a 22-character jti, expiring with the token), each batch closed by
one Revoke RPC, which answers only once the server has read the log up to
it. RSS again. Last, a second server starts on that database, as a replica
restarting would, and reads all of them at once: its RSS too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from authsvc.domain.identity.passwords import Argon2Params

from .database import Principals, SignerSpec, create_database, drop_database, load_signer, populate
from .probes import Probe
from .runner import say
from .scenarios import client_grant, mint, user_grant, verify_request
from .servers import ServerProcess, start_authsvc

SETTLE_SECONDS = 3.0
BATCH = 1000


@dataclass(frozen=True)
class MemoryResult:
    count: int
    rest_bytes: int  # fresh server, idle
    grown_bytes: int  # the same server after ``count`` revocations, in batches
    restart_rest_bytes: int  # a second server on the same database, idle after start
    arrival_seconds: float  # for all the batches


@dataclass
class MemoryPhase:
    """Keeps the first server up for the Revoke run with a loaded set."""

    result: MemoryResult
    server: ServerProcess
    url: str
    signer: SignerSpec
    principals: Principals


async def _insert(conn: asyncpg.Connection, count: int, ttl: int) -> None:
    await conn.execute(
        "INSERT INTO revocations (kind, value, revoked_at, expires_at)"
        " SELECT 'jti', substr(md5(g::text || random()::text), 1, 22), now(), now() + make_interval(secs => $2)"
        " FROM generate_series(1, $1::int) g",
        count, float(ttl),
    )  # fmt: skip


async def _served_once(server: ServerProcess, signer: SignerSpec) -> int:
    """One Verify, then idle for a while: RSS of a server that has served."""
    probe = Probe(server.port)
    try:
        await probe.verify_active(verify_request(mint(signer, [user_grant()])[0]))
    finally:
        await probe.close()
    await asyncio.sleep(SETTLE_SECONDS)
    return server.rss_bytes()


async def run(
    admin_url: str, kek: str, params: Argon2Params, workdir: Path, count: int, issuer: str, ttl: int
) -> MemoryPhase:
    url = await create_database(admin_url, "authsvc_bench_memory")
    principals = await populate(url, params, users=1)
    server = start_authsvc(url, kek, workdir)
    try:
        signer = await load_signer(url, kek, issuer, ttl)
        rest = await _served_once(server, signer)
        batches = max(1, count // BATCH)
        tokens = mint(signer, [client_grant(principals.client_id) for _ in range(batches)])
        conn = await asyncpg.connect(url)
        probe = Probe(server.port)
        started = time.monotonic()
        try:
            for i, token in enumerate(tokens):
                await _insert(conn, count // batches - 1 + (1 if i < count % batches else 0), ttl + 60)
                if await probe.revoke(token) != 1:
                    raise RuntimeError("memory: a Revoke call revoked nothing")
        finally:
            await probe.close()
            await conn.close()
        arrival = time.monotonic() - started
        await asyncio.sleep(SETTLE_SECONDS)
        grown = server.rss_bytes()
        say(f"  {count:,} revocations arrived in {arrival:.1f} s; a second server starts on them ...")
        restarted = start_authsvc(url, kek, workdir, name="authsvc-restarted")
        try:
            restart_rest = await _served_once(restarted, signer)
        finally:
            restarted.stop()
    except BaseException:
        server.stop()
        await drop_database(admin_url, url)
        raise
    return MemoryPhase(MemoryResult(count, rest, grown, restart_rest, arrival), server, url, signer, principals)
