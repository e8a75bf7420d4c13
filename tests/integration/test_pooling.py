"""Postgres behind PgBouncer in transaction mode, and multi-host URLs:
the flows every client uses (login, refresh, revoke, Verify) through a real
pgbouncer process, LISTEN over a direct URL or the reconcile alone, and a
database that will not take writes answering UNAVAILABLE, never INTERNAL."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest

from authsvc.config import Settings
from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..pgbouncer import free_port, pgbouncer, through
from ..support import FakeClock, create_database, drop_database
from .helpers import add_user, login

DEADLINE = 15.0  # seconds for a revocation to reach another replica (it takes well under 1)


@pytest.fixture
async def own_db(admin_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_url, "authsvc_pool")
    yield url
    await drop_database(admin_url, url)


@pytest.fixture
def bouncer(own_db: str, tmp_path: Path) -> Iterator[str]:
    """The test database's URL through a fresh PgBouncer (2 server connections)."""
    with pgbouncer(own_db, tmp_path) as port:
        yield through(own_db, port)


def pooled(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, database_pooling="transaction", **changes)


async def until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``probe`` until it holds, for at most DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE}s: {what}")
        await asyncio.sleep(0.05)


def verify(stub: pb_grpc.AuthServiceAsyncStub, token: str) -> Awaitable[pb.VerifyResponse]:
    return stub.Verify(pb.VerifyRequest(token=token, audience="orders"))


async def test_flows_through_pgbouncer_in_transaction_mode(settings, bouncer, own_db, passwords):
    clock = FakeClock()
    # A: everything through PgBouncer, no LISTEN (the reconcile alone).
    # B: through PgBouncer too, LISTEN over a direct URL, reconcile too slow to matter.
    reconcile_only = pooled(settings, reconcile_interval=0.2)
    listening = pooled(settings, reconcile_interval=3600.0, listen_database_url=own_db)
    async with (
        App(reconcile_only, bouncer, clock=clock) as a,  # its migrations ran through PgBouncer
        App(listening, bouncer, clock=clock) as b,
        grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ch_a,
        grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch_b,
    ):
        assert a._listener is None and b._listener is not None
        stub_a, stub_b = pb_grpc.AuthServiceStub(ch_a), pb_grpc.AuthServiceStub(ch_b)
        users = [await add_user(a.deps.store, passwords, clock) for _ in range(8)]

        # Many client connections over two server connections, at once: with
        # asyncpg's statement cache on, these would collide on prepared
        # statements that exist on another server connection.
        pairs = await asyncio.gather(*(login(stub, u) for stub, u in zip((stub_a, stub_b) * 4, users, strict=True)))
        clock.advance(3)  # past the minimum interval between refreshes
        rotated = await asyncio.gather(
            *(stub_b.Refresh(pb.RefreshRequest(refresh_token=p.refresh_token)) for p in pairs)
        )
        for pair, new in zip(pairs, rotated, strict=True):
            assert new.tokens.session_id == pair.session_id
            assert (await verify(stub_a, new.tokens.access_token)).active
        with pytest.raises(grpc.aio.AioRpcError) as spent:
            await stub_a.Refresh(pb.RefreshRequest(refresh_token=pairs[0].refresh_token))
        assert spent.value.code() == grpc.StatusCode.UNAUTHENTICATED

        # Revoked on A: B hears it by NOTIFY over its direct URL.
        first = rotated[1].tokens.access_token
        assert (await stub_a.Revoke(pb.RevokeRequest(token=first))).revoked == 1
        await until(lambda: _revoked(stub_b, first), "B sees A's revocation by NOTIFY")
        # Revoked on B: A, without LISTEN, finds it by the reconcile.
        second = rotated[2].tokens.access_token
        assert (await stub_b.Revoke(pb.RevokeRequest(token=second))).revoked == 1
        await until(lambda: _revoked(stub_a, second), "A sees B's revocation by the reconcile")
        assert (await verify(stub_a, rotated[3].tokens.access_token)).active


async def _revoked(stub: pb_grpc.AuthServiceAsyncStub, token: str) -> bool:
    return (await verify(stub, token)).reason == pb.INACTIVE_REASON_REVOKED


async def test_a_multi_host_url_finds_the_host_that_answers(settings, own_db, passwords):
    parts = urlsplit(own_db)
    auth = parts.netloc.rpartition("@")[0]
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    multi = parts._replace(netloc=f"{auth}@{dead},{parts.hostname}:{parts.port or 5432}").geturl()
    clock = FakeClock()
    async with App(settings, multi, clock=clock) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.AuthServiceStub(ch)
        pair = await login(stub, await add_user(app.deps.store, passwords, clock))
        assert (await verify(stub, pair.access_token)).active


async def test_a_database_that_refuses_writes_answers_unavailable(settings, own_db, admin_url, passwords):
    """What a demoted primary looks like to a client: read-only. New connections
    skip it (target_session_attrs=read-write), calls answer UNAVAILABLE, never
    INTERNAL, and the replica recovers by itself when writes are back."""
    name = urlsplit(own_db).path.lstrip("/")
    clock = FakeClock()
    admin = await asyncpg.connect(admin_url)
    app = App(dataclasses.replace(settings, reconcile_interval=0.1), own_db, clock=clock)
    await app.start()
    try:
        user = await add_user(app.deps.store, passwords, clock)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = pb_grpc.AuthServiceStub(ch)
            pair = await login(stub, user)
            await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))
                assert (err.value.code(), err.value.details()) == (
                    grpc.StatusCode.UNAVAILABLE,
                    "service unavailable, retry later",
                )
            await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')

            async def writes() -> bool:
                try:
                    await login(stub, user)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                    return False
                return True

            await until(writes, "writes work again")
            clock.advance(3)
            # The refresh that answered UNAVAILABLE did not happen: the token still works.
            assert (await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))).tokens.access_token
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()
        await app.stop(grace=0)
