"""Health, restarts, a database that goes away, graceful shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import grpc
import httpx2
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import FakeClock, create_database, drop_database
from .helpers import add_client, add_user, login

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def own_db(admin_url) -> AsyncIterator[str]:
    url = await create_database(admin_url, "authsvc_life")
    yield url
    await drop_database(admin_url, url)


async def health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        request = health_pb2.HealthCheckRequest(service="authsvc.v1.AuthService")
        resp = await health_pb2_grpc.HealthStub(ch).Check(request)
        return resp.status


async def test_revocation_survives_restart_and_is_seen_by_a_new_replica(settings, own_db, passwords):
    clock = FakeClock()
    async with App(settings, own_db, clock=clock) as first:
        assert await health(first.port) == SERVING
        user = await add_user(first.deps.store, passwords, clock)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as ch:
            stub = pb_grpc.AuthServiceStub(ch)
            pair = await login(stub, user)
            assert (await stub.Revoke(pb.RevokeRequest(token=pair.access_token))).revoked == 1
    async with (
        App(settings, own_db, clock=clock) as second,
        grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as ch,
    ):
        stub = pb_grpc.AuthServiceStub(ch)
        resp = await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders"))
        assert resp.reason == pb.INACTIVE_REASON_REVOKED
        # The same signing key came back from the database: other tokens still verify.
        fresh = await login(stub, user)
        assert (await stub.Verify(pb.VerifyRequest(token=fresh.access_token, audience="orders"))).active
        assert (await stub.GetJWKS(pb.GetJWKSRequest())).jwks_json == first.deps.live.keyring.jwks_json


async def http_status(port: int, path: str, data: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    async with httpx2.AsyncClient(timeout=5) as client:
        url = f"http://127.0.0.1:{port}{path}"
        answer = await (client.get(url) if data is None else client.post(url, data=data))
        return answer.status_code, dict(answer.headers)


async def test_database_outage_fails_closed_then_recovers(settings, own_db, admin_url, passwords):
    clock = FakeClock()
    app = App(dataclasses.replace(settings, http_listen="127.0.0.1:0"), own_db, clock=clock)
    await app.start()
    name = urlsplit(own_db).path.lstrip("/")
    admin = await asyncpg.connect(admin_url)
    try:
        user = await add_user(app.deps.store, passwords, clock)
        client = await add_client(app.deps.store, clock)
        token_request = {"grant_type": "client_credentials", "client_id": client.id, "client_secret": client.secret}
        assert (await http_status(app.http_port, "/readyz"))[0] == 200
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = pb_grpc.AuthServiceStub(ch)
            pair = await login(stub, user)
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await login(stub, user)
            assert (err.value.code(), err.value.details()) == (
                grpc.StatusCode.UNAVAILABLE,
                "service unavailable, retry later",
            )
            await _until(lambda: health(app.port), NOT_SERVING)
            # Not ready, yet alive (a restart would not help); OAuth fails closed with a 503.
            assert (await http_status(app.http_port, "/readyz"))[0] == 503
            assert (await http_status(app.http_port, "/healthz"))[0] == 503
            assert (await http_status(app.http_port, "/livez"))[0] == 200
            status, headers = await http_status(app.http_port, "/oauth2/token", token_request)
            assert (status, headers["retry-after"]) == (503, "1")
            # Within its staleness bound Verify answers from memory (a
            # failover's window costs verifiers nothing)...
            ticks = FakeClock(start=0.0)
            ticks.advance(app.deps.live.monotonic())
            app.deps.live.monotonic = ticks.now
            assert (await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders"))).active
            # ...past it, revocations elsewhere could go unseen: it fails closed.
            ticks.advance(app.settings.verify_max_staleness + 1)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders"))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await _until(lambda: health(app.port), SERVING)
            assert (await login(stub, user)).access_token
            assert (await http_status(app.http_port, "/readyz"))[0] == 200
            assert (await http_status(app.http_port, "/oauth2/token", token_request))[0] == 200
            assert (await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders"))).active
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await app.stop(grace=0)


async def _until(probe, want, attempts: int = 100) -> None:
    """Wait (bounded) for the background loop to notice; it runs on real time."""
    for _ in range(attempts):
        if await probe() == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never reached {want}")


async def test_graceful_stop_goes_not_serving_and_lets_calls_finish(settings, own_db, passwords):
    clock = FakeClock()
    app = App(settings, own_db, clock=clock)
    await app.start()
    user = await add_user(app.deps.store, passwords, clock)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.AuthServiceStub(ch)
        await ch.channel_ready()
        in_flight = asyncio.ensure_future(login(stub, user))  # argon2 keeps it busy for a while
        await asyncio.sleep(0.005)  # let the request reach the server; the hash takes far longer
        await app.stop(grace=5)
        assert (await in_flight).access_token
        assert app.health._server_status[""] == NOT_SERVING  # what balancers saw


async def test_a_watch_stream_ended_by_shutdown_ends_unavailable(settings, own_db):
    """Not OK: a generic client reads OK as "finished"; UNAVAILABLE says
    "resume from your cursor, here or elsewhere" (issue 12)."""
    app = App(settings, own_db, clock=FakeClock())
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stream = pb_grpc.AuthServiceStub(ch).WatchRevocations(pb.WatchRevocationsRequest(cursor=0))
            async for event in stream:
                if event.kind == pb.RevocationEvent.KIND_CAUGHT_UP:
                    break
            stopping = asyncio.ensure_future(app.stop(grace=2))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stream:
                    pass
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            await stopping
    finally:
        await app.stop(grace=0)
