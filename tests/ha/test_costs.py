"""What one login, refresh and revoke cost the primary, measured on an
otherwise idle database of the Patroni cluster (synchronous standby and all):
statements (pg_stat_statements, BEGIN and COMMIT included: once asyncpg has
prepared a statement each is one round trip), the server's execution time,
and bytes of WAL (pg_stat_statements' wal_bytes, and pg_current_wal_lsn()
before and after). Then how long a revocation takes to reach another
replica, with LISTEN/NOTIFY and by the reconcile alone. The figures of the
README's "Scaling authsvc" come from here; they are printed, and written to
$AUTHSVC_HA_REPORT.costs.json when that is set."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from authsvc.config import Settings
from authsvc.domain.identity import credentials
from authsvc.domain.identity.passwords import Argon2Params, Passwords
from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import FakeClock
from .cluster import Cluster
from .conftest import PASSWORD, create_database

pytestmark = [pytest.mark.ha, pytest.mark.timeout(600)]

N = 200  # operations per figure
CHEAP = Argon2Params(time_cost=1, memory_kib=64, parallelism=1)  # the hash is not the database's cost
QUIET = 3600.0  # seconds: no background reads while measuring


def quiet_settings(tmp: Path, **changes: Any) -> Settings:
    base = Settings.from_env({"AUTHSVC_LISTEN": "127.0.0.1:0", "AUTHSVC_KEK": "t1:" + "A" * 43})
    policy = dataclasses.replace(base.policy, refresh_min_interval=0, key_reload_interval=int(QUIET))
    settings = dataclasses.replace(
        base, data_dir=tmp, argon2=CHEAP, policy=policy, reconcile_interval=QUIET, key_reload_interval=QUIET,
        use_notify=False, shutdown_grace=0.0,
    )  # fmt: skip
    return dataclasses.replace(settings, **changes)


class Meter:
    """pg_stat_statements and the WAL position around a batch of operations,
    from a connection to another database (its own statements do not count)."""

    def __init__(self, conn: asyncpg.Connection, database: str) -> None:
        self._conn, self._db = conn, database

    async def measure(self, work: Callable[[], Awaitable[None]]) -> dict[str, float]:
        await self._conn.execute("SELECT pg_stat_statements_reset()")
        before = await self._conn.fetchval("SELECT pg_current_wal_lsn()")
        started = time.monotonic()
        await work()
        elapsed = time.monotonic() - started
        after = await self._conn.fetchval("SELECT pg_current_wal_lsn()")
        row = await self._conn.fetchrow(
            "SELECT coalesce(sum(calls), 0) AS calls, coalesce(sum(calls) FILTER (WHERE toplevel), 0) AS trips,"
            " coalesce(sum(total_exec_time) FILTER (WHERE toplevel), 0) AS ms,"
            " coalesce(sum(wal_bytes) FILTER (WHERE toplevel), 0) AS wal,"
            " coalesce(sum(calls) FILTER (WHERE query = 'COMMIT'), 0) AS commits"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
            self._db,
        )
        assert row is not None
        lsn = await self._conn.fetchval("SELECT $1::pg_lsn - $2::pg_lsn", after, before)
        return {
            "round_trips": round(float(row["trips"]) / N, 2),  # statements the client sent
            "statements": round(float(row["calls"]) / N, 2),  # with those run inside (foreign-key checks)
            "commits": round(float(row["commits"]) / N, 2),  # explicit COMMITs (one statement commits alone)
            "exec_ms": round(float(row["ms"]) / N, 3),  # the server's time executing them
            "wal_bytes": round(float(row["wal"]) / N),
            "wal_bytes_lsn": round(float(lsn) / N),
            "client_ms": round(elapsed * 1000 / N, 2),
        }

    async def statements_by_op(self) -> list[tuple[str, int]]:
        rows = await self._conn.fetch(
            "SELECT toplevel, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q, calls FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 ORDER BY calls DESC",
            self._db,
        )
        return [(("" if r["toplevel"] else "(nested) ") + r["q"], int(r["calls"])) for r in rows]


async def test_what_each_operation_costs_the_primary(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await create_database(cluster, "costs")
    leader, _ = await asyncio.to_thread(cluster.wait_ready)
    admin = await asyncpg.connect(cluster.direct_url(leader, "postgres"))
    await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    meter = Meter(admin, "costs")
    clock = FakeClock()
    figures: dict[str, Any] = {}
    passwords = Passwords(CHEAP)
    try:
        async with App(quiet_settings(tmp_path / "a"), url, clock=clock) as app:
            store = app.deps.store  # type: ignore[union-attr]
            names = [f"cost-user-{i}" for i in range(N)]
            for name in names:
                await store.create_user(name, await passwords.hash_async(PASSWORD), ["read"], ["orders"], clock.now())
            client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
            await store.create_client(client_id, "cost-svc", credentials.digest(secret), [], ["orders"], clock.now())
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = pb_grpc.AuthServiceStub(channel)

                async def login(name: str) -> pb.TokenPair:
                    request = pb.IssueRequest(password=pb.PasswordCredential(username=name, password=PASSWORD))
                    return (await stub.Issue(request)).tokens

                for name in names[:20]:  # warm: every statement prepared, every page touched once
                    pair = await login(name)
                    await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))
                    await stub.Revoke(pb.RevokeRequest(token=pair.access_token))
                pairs: list[pb.TokenPair] = []

                async def logins() -> None:
                    for name in names:
                        pairs.append(await login(name))

                figures["login (password)"] = await meter.measure(logins)
                queries = {"login (password)": await meter.statements_by_op()}
                refreshed: list[pb.TokenPair] = []

                async def refreshes() -> None:
                    for pair in pairs:  # each a session's first refresh, as in the bench
                        refreshed.append(
                            (await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))).tokens
                        )

                figures["refresh"] = await meter.measure(refreshes)
                queries["refresh"] = await meter.statements_by_op()

                async def revokes() -> None:
                    for pair in refreshed:
                        await stub.Revoke(pb.RevokeRequest(token=pair.access_token))

                figures["revoke (access token)"] = await meter.measure(revokes)
                queries["revoke (access token)"] = await meter.statements_by_op()
                client = pb.IssueRequest(client=pb.ClientCredential(client_id=client_id, client_secret=secret))

                async def issues() -> None:
                    for _ in range(N):
                        await stub.Issue(client)

                figures["issue (client credentials)"] = await meter.measure(issues)
                live = pairs[-1].access_token  # not revoked: its refresh got another access token

                async def verifies() -> None:
                    for _ in range(N):
                        assert (await stub.Verify(pb.VerifyRequest(token=live, audience="orders"))).active

                figures["verify"] = await meter.measure(verifies)

        figures["propagation"] = {
            "notify": await propagation(url, tmp_path / "n", notify=True),
            "reconcile only (1 s)": await propagation(url, tmp_path / "r", notify=False),
        }
    finally:
        passwords.close()
        await admin.close()

    assert figures["verify"]["statements"] == 0, "Verify touched the database"
    for op in ("login (password)", "refresh", "revoke (access token)"):
        assert figures[op]["round_trips"] >= 1 and figures[op]["wal_bytes"] > 0, op  # it wrote, and committed
    assert figures["propagation"]["notify"]["p50_ms"] < figures["propagation"]["reconcile only (1 s)"]["p50_ms"]
    text = json.dumps({"per_operation": figures, "statements": queries}, indent=1)
    if os.environ.get("AUTHSVC_HA_REPORT"):
        Path(os.environ["AUTHSVC_HA_REPORT"] + ".costs.json").write_text(text)
    with capsys.disabled():
        print("\nCosts on the primary, per operation:\n" + json.dumps(figures, indent=1))


async def propagation(url: str, tmp: Path, *, notify: bool, trials: int = 20) -> dict[str, float]:
    """Revoke on replica A; how long until replica B refuses the token.
    Both reconcile every second (the default); B listens or not."""
    clock = FakeClock()
    a_settings = quiet_settings(tmp / "a", reconcile_interval=1.0)
    b_settings = quiet_settings(tmp / "b", reconcile_interval=1.0, use_notify=notify)
    passwords = Passwords(CHEAP)
    delays = []
    try:
        async with (
            App(a_settings, url, clock=clock) as a,
            App(b_settings, url, clock=clock) as b,
            grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ch_a,
            grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch_b,
        ):
            stub_a, stub_b = pb_grpc.AuthServiceStub(ch_a), pb_grpc.AuthServiceStub(ch_b)
            name = f"prop-user-{notify}"
            await a.deps.store.create_user(  # type: ignore[union-attr]
                name, await passwords.hash_async(PASSWORD), ["read"], ["orders"], clock.now()
            )
            rng = random.Random(trials)
            for _ in range(trials):
                # At a random moment of B's reconcile cycle (not just after one).
                await asyncio.sleep(rng.uniform(0, 1.0))
                request = pb.IssueRequest(password=pb.PasswordCredential(username=name, password=PASSWORD))
                token = (await stub_a.Issue(request)).tokens.access_token
                check = pb.VerifyRequest(token=token, audience="orders")
                assert (await stub_b.Verify(check)).active
                await stub_a.Revoke(pb.RevokeRequest(token=token))
                acked = time.monotonic()
                deadline = acked + 10
                while (await stub_b.Verify(check)).active:
                    assert time.monotonic() < deadline, "the revocation never reached B"
                    await asyncio.sleep(0.002)
                delays.append((time.monotonic() - acked) * 1000)
    finally:
        passwords.close()
    delays.sort()
    return {"p50_ms": round(statistics.median(delays), 1), "max_ms": round(delays[-1], 1), "trials": trials}
