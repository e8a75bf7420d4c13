"""Call credentials for a service's own outgoing calls, against the real
authsvc: the token is reused, refreshed at about 80% of its lifetime (fake
fake_clock), one Issue however many calls wait, and the old token bridges a failed
refresh until it expires."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from authsvc_client import (
    AsyncAuthClient,
    AsyncAuthServerInterceptor,
    AsyncClientCredentialsAuth,
    AuthClient,
    ClientCredentialsAuth,
    InvalidCredentials,
    Requirements,
    TokenVerifier,
    Unavailable,
)

from ..integration.helpers import add_client
from ..support import FakeClock
from .helpers import FAST_RECONNECT, AsyncCounter, SyncCounter, TcpProxy, eventually
from .test_interceptors import SERVICE, aio_server

LIFETIME = 300  # the test server's access-token lifetime
LOCAL = grpc.LocalConnectionType.LOCAL_TCP


@pytest.fixture
async def service(store, fake_clock):
    return await add_client(store, fake_clock, scopes=("read",), audiences=("orders",))


@pytest.fixture
async def aclient(authsvc) -> AsyncIterator[tuple[AsyncAuthClient, AsyncCounter]]:
    counter = AsyncCounter()
    interceptors: list[Any] = [counter]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{authsvc.port}", interceptors=interceptors, options=FAST_RECONNECT)
    async with AsyncAuthClient(channel) as client:
        yield client, counter


@pytest.fixture
def sclient(authsvc):
    counter = SyncCounter()
    plain = grpc.insecure_channel(f"127.0.0.1:{authsvc.port}", options=FAST_RECONNECT)
    channel = grpc.intercept_channel(plain, counter)
    with AuthClient(channel) as client:
        yield client, counter


async def test_async_token_is_reused_then_refreshed_at_80_percent(aclient, service, fake_clock):
    client, counter = aclient
    own = FakeClock(fake_clock.now())
    auth = AsyncClientCredentialsAuth(client, service.id, service.secret, audience=["orders"], clock=own.now)
    first = await auth.token()
    assert [await auth.token() for _ in range(5)] == [first] * 5
    own.advance(0.74 * LIFETIME)
    assert await auth.token() == first
    assert counter.calls["Issue"] == 1
    own.advance(0.12 * LIFETIME)  # 86%: due, and still valid
    assert await auth.token() == first  # nobody waits: the refresh runs behind
    await eventually(lambda: counter.calls["Issue"] == 2)
    second = await auth.token()
    assert second != first
    assert (await client.verify(second, Requirements(audience="orders", scopes=("read",)))).active
    own.advance(2 * LIFETIME)  # long idle: the token expired, so this call waits for a new one
    third = await auth.token()
    assert third not in (first, second) and counter.calls["Issue"] == 3


async def test_sync_token_is_reused_then_refreshed_at_80_percent(sclient, service, fake_clock):
    client, counter = sclient
    own = FakeClock(fake_clock.now())
    auth = ClientCredentialsAuth(client, service.id, service.secret, audience=["orders"], clock=own.now)
    first = await asyncio.to_thread(auth.token)
    assert await asyncio.to_thread(auth.token) == first
    own.advance(0.74 * LIFETIME)
    assert await asyncio.to_thread(auth.token) == first and counter.calls["Issue"] == 1
    own.advance(0.12 * LIFETIME)
    second = await asyncio.to_thread(auth.token)  # the caller that finds it due refreshes
    assert second != first and counter.calls["Issue"] == 2


async def test_a_burst_of_async_callers_causes_one_issue(aclient, service, fake_clock):
    client, counter = aclient
    auth = AsyncClientCredentialsAuth(client, service.id, service.secret, clock=fake_clock.now)
    tokens = await asyncio.gather(*(auth.token() for _ in range(50)))
    assert len(set(tokens)) == 1 and counter.calls["Issue"] == 1


async def test_a_burst_of_threads_causes_one_issue(sclient, service, fake_clock):
    client, counter = sclient
    auth = ClientCredentialsAuth(client, service.id, service.secret, clock=fake_clock.now)
    start = threading.Barrier(20)

    def one() -> str:
        start.wait()
        return auth.token()

    def burst() -> list[str]:
        with futures.ThreadPoolExecutor(20) as pool:
            return list(pool.map(lambda _: one(), range(20)))

    tokens = await asyncio.to_thread(burst)
    assert len(set(tokens)) == 1 and counter.calls["Issue"] == 1


@pytest.fixture
async def protected(authsvc, settings, fake_clock) -> AsyncIterator[int]:
    """A downstream aio service on a local (loopback) secure port, so that
    call credentials travel; it requires the "read" scope."""
    verifier = TokenVerifier(
        AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{authsvc.port}")),
        issuer=settings.policy.issuer,
        clock=fake_clock.now,
    )
    await verifier.start()
    interceptor = AsyncAuthServerInterceptor(
        verifier, {f"/{SERVICE}/Whoami": Requirements(audience="orders", scopes=("read",))}
    )
    server, port = await aio_server(interceptor, grpc.local_server_credentials(LOCAL))
    yield port
    await server.stop(0)
    await verifier.close()


async def test_call_credentials_on_a_burst_of_aio_calls(protected, aclient, service, fake_clock):
    client, counter = aclient
    auth = AsyncClientCredentialsAuth(client, service.id, service.secret, audience=["orders"], clock=fake_clock.now)
    creds = grpc.composite_channel_credentials(grpc.local_channel_credentials(LOCAL), auth.call_credentials())
    async with grpc.aio.secure_channel(f"localhost:{protected}", creds) as channel:
        whoami = channel.unary_unary(f"/{SERVICE}/Whoami")
        answers = await asyncio.gather(*(whoami(b"", timeout=10) for _ in range(30)))
    assert set(answers) == {f"{service.id} read".encode()}
    assert counter.calls["Issue"] == 1


async def test_call_credentials_on_a_burst_of_threaded_calls(protected, sclient, service, fake_clock):
    client, counter = sclient
    auth = ClientCredentialsAuth(client, service.id, service.secret, audience=["orders"], clock=fake_clock.now)
    creds = grpc.composite_channel_credentials(grpc.local_channel_credentials(LOCAL), auth.call_credentials())

    def burst() -> set[bytes]:
        channel: Any
        with grpc.secure_channel(f"localhost:{protected}", creds) as channel:
            whoami = channel.unary_unary(f"/{SERVICE}/Whoami")
            with futures.ThreadPoolExecutor(16) as pool:
                return set(pool.map(lambda _: whoami(b"", timeout=10), range(32)))

    assert await asyncio.to_thread(burst) == {f"{service.id} read".encode()}
    assert counter.calls["Issue"] == 1


async def test_bad_client_credentials_fail_the_call_without_leaking_the_secret(protected, aclient, service):
    client, _ = aclient
    auth = AsyncClientCredentialsAuth(client, service.id, "not-the-secret", audience=["orders"])
    with pytest.raises(InvalidCredentials):
        await auth.token()
    creds = grpc.composite_channel_credentials(grpc.local_channel_credentials(LOCAL), auth.call_credentials())
    async with grpc.aio.secure_channel(f"localhost:{protected}", creds) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary(f"/{SERVICE}/Whoami")(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # gRPC's status for a failed credentials plugin
    assert "not-the-secret" not in (err.value.details() or "")


@pytest.mark.parametrize("sync", [True, False])
async def test_the_old_token_bridges_a_failed_refresh_until_it_expires(authsvc, service, fake_clock, sync):
    proxy = TcpProxy(authsvc.port)
    port = await proxy.start()
    own = FakeClock(fake_clock.now())
    target = f"127.0.0.1:{port}"
    if sync:
        sync_client = AuthClient(grpc.insecure_channel(target, options=FAST_RECONNECT), timeout=1)
        auth = ClientCredentialsAuth(sync_client, service.id, service.secret, clock=own.now)

        async def token() -> str:
            return await asyncio.to_thread(auth.token)
    else:
        async_client = AsyncAuthClient(grpc.aio.insecure_channel(target, options=FAST_RECONNECT), timeout=1)
        aauth = AsyncClientCredentialsAuth(async_client, service.id, service.secret, clock=own.now)
        token = aauth.token
    try:
        first = await token()
        await proxy.stop()
        own.advance(0.9 * LIFETIME)
        assert await token() == first  # authsvc is gone, the token still works
        await asyncio.sleep(0.05)  # let a background refresh fail
        assert await token() == first
        own.advance(0.2 * LIFETIME)  # expired now: no token to give
        with pytest.raises(Unavailable):
            await token()
    finally:
        await proxy.stop()
        if sync:
            sync_client.close()
        else:
            await async_client.close()


def test_refresh_point_must_leave_room_for_the_jitter():
    client = AuthClient(grpc.insecure_channel("127.0.0.1:1"))
    for refresh_at, jitter in ((0, 0), (1, 0), (0.8, 0.3), (0.1, 0.2)):
        with pytest.raises(ValueError):
            ClientCredentialsAuth(client, "id", "secret", refresh_at=refresh_at, jitter=jitter)
    client.close()
