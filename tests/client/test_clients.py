"""AuthClient and AsyncAuthClient against the real in-process authsvc: every
RPC, the error tree, and retries on UNAVAILABLE only, bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pyotp
import pytest

from authsvc_client import (
    AsyncAuthClient,
    AuthClient,
    AuthsvcError,
    ClientCredential,
    InvalidCredentials,
    KeySet,
    MfaChallenge,
    PasswordCredential,
    PermissionDenied,
    Reason,
    ReauthRequired,
    Requirements,
    RetryPolicy,
    Throttled,
    TokenPair,
    Unavailable,
    verify_access_token,
)

from ..integration.helpers import add_client, add_user
from .helpers import FAST_RECONNECT, AsyncCounter, SyncCounter, TcpProxy, dead_port

ORDERS = Requirements(audience="orders")
QUICK = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.005)


@dataclass
class Client:
    """One client, sync or async, called the same way from async tests: a
    sync call runs in a thread so that the in-process server keeps serving."""

    impl: Any
    counter: Any
    sync: bool

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.impl, method)
        if self.sync:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await fn(*args, **kwargs)

    async def watch_until(self, cursor: int, predicate) -> list[Any]:
        seen: list[Any] = []
        if self.sync:

            def read() -> None:
                for event in self.impl.watch_revocations(cursor):
                    seen.append(event)
                    if predicate(event):
                        return

            await asyncio.wait_for(asyncio.to_thread(read), 10)
        else:

            async def aread() -> None:
                async for event in self.impl.watch_revocations(cursor):
                    seen.append(event)
                    if predicate(event):
                        return

            await asyncio.wait_for(aread(), 10)
        return seen


def make_client(port: int, sync: bool, channel_options=FAST_RECONNECT, **options: Any) -> Client:
    target = f"127.0.0.1:{port}"
    if sync:
        counter = SyncCounter()
        channel = grpc.intercept_channel(grpc.insecure_channel(target, options=channel_options), counter)
        return Client(AuthClient(channel, **options), counter, True)
    acounter = AsyncCounter()
    interceptors: list[Any] = [acounter]
    achannel = grpc.aio.insecure_channel(target, interceptors=interceptors, options=channel_options)
    return Client(AsyncAuthClient(achannel, **options), acounter, False)


async def close(client: Client) -> None:
    if client.sync:
        client.impl.close()
    else:
        await client.impl.close()


@pytest.fixture(params=["sync", "async"])
async def client(request, authsvc) -> AsyncIterator[Client]:
    c = make_client(authsvc.port, request.param == "sync")
    yield c
    await close(c)


async def test_every_rpc(client, store, passwords, fake_clock, settings):
    user = await add_user(store, passwords, fake_clock)
    issued = await client("issue", PasswordCredential(user.name, user.password))  # for orders
    own = await client("issue", PasswordCredential(user.name, user.password), audience=["authsvc"])  # self-service
    assert isinstance(issued, TokenPair)
    assert issued.token_type == "Bearer" and issued.session_id and issued.refresh_token
    assert issued.scope == ("read", "write") and issued.expires_in == 300
    assert "access_token" not in repr(issued) and issued.access_token not in repr(issued)

    ok = await client("verify", issued.access_token, Requirements(audience="orders", scopes=("read",)))
    assert ok.active and ok.reason is None
    assert ok.claims.sub == user.id and ok.claims.sid == issued.session_id and ok.claims.amr == ("pwd",)
    missing = await client("verify", issued.access_token, Requirements(audience="orders", scopes=("admin",)))
    assert (missing.active, missing.reason, missing.claims) == (False, Reason.MISSING_SCOPE, None)

    keys = KeySet.from_jwks(await client("get_jwks"))
    local = verify_access_token(
        issued.access_token, keys=keys, issuer=settings.policy.issuer, requirements=ORDERS, now=fake_clock.now()
    )
    assert local == ok.claims  # the RPC and the local rules agree (raw is not compared)

    sessions = await client("list_sessions", own.access_token)
    assert [s.session_id for s in sessions] == [issued.session_id, own.session_id]
    assert sessions[0].subject == user.id and sessions[0].revoked_at is None and sessions[0].last_refresh_at is None

    refreshed = await client("refresh", issued.refresh_token, scope=["read"])
    assert refreshed.scope == ("read",) and refreshed.session_id == issued.session_id
    with pytest.raises(InvalidCredentials):
        await client("refresh", "not-a-refresh-token")

    with pytest.raises(InvalidCredentials):  # a token for orders does not work at authsvc's self-service
        await client("enroll_mfa", refreshed.access_token)
    enrolment = await client("enroll_mfa", own.access_token)
    assert enrolment.otpauth_uri.startswith("otpauth://totp/") and enrolment.secret not in repr(enrolment)
    codes = await client("confirm_mfa", own.access_token, pyotp.TOTP(enrolment.secret).at(fake_clock.now()))
    assert len(codes) >= 5 and len(set(codes)) == len(codes)

    challenge = await client("issue", PasswordCredential(user.name, user.password), audience=["authsvc"])
    assert isinstance(challenge, MfaChallenge)
    assert set(challenge.methods) == {"totp", "recovery_code"} and challenge.expires_at > fake_clock.now()
    with pytest.raises(ValueError):
        await client("challenge_mfa", challenge.challenge_id)  # neither code given
    second = await client("challenge_mfa", challenge.challenge_id, recovery_code=codes[0])
    assert second.session_id and second.session_id != issued.session_id

    refreshed_jti = (await client("verify", refreshed.access_token, ORDERS)).claims.jti
    assert await client("revoke", refreshed.access_token) == 1
    gone = await client("verify", refreshed.access_token, ORDERS)
    assert (gone.active, gone.reason) == (False, Reason.REVOKED)
    assert await client("revoke", session_id=issued.session_id, access_token=second.access_token) == 1
    with pytest.raises(ValueError):
        await client("revoke", session_id=issued.session_id)  # needs the caller's token

    events = await client.watch_until(0, lambda e: e.kind == "session" and e.value == issued.session_id)
    assert any(e.kind == "jti" and e.value == refreshed_jti for e in events)
    assert all(e.resume_cursor <= e.seq for e in events)
    assert await client("revoke", subject=user.id, access_token=second.access_token) == 2  # own and the MFA one

    service = await add_client(store, fake_clock)
    pair = await client("issue", ClientCredential(service.id, service.secret), audience=["orders"])
    assert pair.refresh_token == "" and pair.session_id == "" and pair.scope == ("orders.read",)


async def test_errors_become_the_client_exception_tree(client, store, passwords, fake_clock):
    service = await add_client(store, fake_clock)
    with pytest.raises(InvalidCredentials) as bad:
        await client("issue", ClientCredential(service.id, "wrong"))
    assert bad.value.code == grpc.StatusCode.UNAUTHENTICATED and bad.value.message == "invalid credentials"
    assert "wrong" not in repr(bad.value)

    alice, bob = await add_user(store, passwords, fake_clock), await add_user(store, passwords, fake_clock)
    a = await client("issue", PasswordCredential(alice.name, alice.password))
    b = await client("issue", PasswordCredential(bob.name, bob.password), audience=["authsvc"])
    with pytest.raises(PermissionDenied) as denied:
        await client("revoke", session_id=a.session_id, access_token=b.access_token)
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED

    again = await client("refresh", a.refresh_token)
    fake_clock.advance(0.5)
    with pytest.raises(Throttled) as throttled:
        await client("refresh", again.refresh_token)  # sooner than 2 s after the last refresh
    assert throttled.value.retry_after == pytest.approx(1.5, abs=0.002)

    with pytest.raises(ReauthRequired) as precondition:
        await client("confirm_mfa", b.access_token, "123456")  # no enrolment pending
    assert precondition.value.code == grpc.StatusCode.FAILED_PRECONDITION

    with pytest.raises(AuthsvcError) as invalid:
        await client("verify", "", ORDERS)  # no token at all: a broken request
    assert type(invalid.value) is AuthsvcError and invalid.value.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_old_login_must_reauthenticate(client, store, passwords, fake_clock):
    user = await add_user(store, passwords, fake_clock)
    pair = await client("issue", PasswordCredential(user.name, user.password), audience=["authsvc"])
    for _ in range(2):  # 1000 s later, on a freshly refreshed token: still the old login
        fake_clock.advance(500)
        pair = await client("refresh", pair.refresh_token)
    with pytest.raises(ReauthRequired):
        await client("enroll_mfa", pair.access_token)


# --- retries ----------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
async def nowhere(request) -> AsyncIterator[Client]:
    c = make_client(dead_port(), request.param == "sync", retry=QUICK)
    yield c
    await close(c)


async def test_unavailable_is_retried_up_to_max_attempts(nowhere):
    with pytest.raises(Unavailable) as err:
        await nowhere("get_jwks")
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    assert nowhere.counter.calls["GetJWKS"] == QUICK.max_attempts
    with pytest.raises(Unavailable):
        await nowhere("issue", ClientCredential("id", "secret"))
    with pytest.raises(Unavailable):
        await nowhere("revoke", "token")
    assert nowhere.counter.calls["Issue"] == nowhere.counter.calls["Revoke"] == QUICK.max_attempts


async def test_guesses_and_one_time_codes_are_never_retried(nowhere):
    with pytest.raises(Unavailable):
        await nowhere("issue", PasswordCredential("alice", "pw"))
    with pytest.raises(Unavailable):
        await nowhere("challenge_mfa", "challenge", totp_code="123456")
    with pytest.raises(Unavailable):
        await nowhere("confirm_mfa", "token", "123456")
    assert dict(nowhere.counter.calls) == {"Issue": 1, "ChallengeMFA": 1, "ConfirmMFA": 1}


async def test_other_errors_are_not_retried(authsvc, store, passwords, fake_clock):
    for sync in (True, False):
        c = make_client(authsvc.port, sync, retry=QUICK)
        user = await add_user(store, passwords, fake_clock)
        with pytest.raises(InvalidCredentials):
            await c("issue", PasswordCredential(user.name, "wrong password"))
        with pytest.raises(InvalidCredentials):
            await c("issue", ClientCredential("no-such-client", "secret"))
        with pytest.raises(AuthsvcError):
            await c("verify", "", ORDERS)
        assert dict(c.counter.calls) == {"Issue": 2, "Verify": 1}
        await close(c)


async def test_a_retry_reaches_a_server_that_came_back(authsvc):
    proxy = TcpProxy(authsvc.port)
    port = await proxy.start()
    await proxy.stop()
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)
        if not proxy.running:
            await proxy.start()  # the server is back before the second try
        await asyncio.sleep(0.2)

    counter = AsyncCounter()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=[counter], options=FAST_RECONNECT)
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.01)
    async with AsyncAuthClient(channel, retry=policy, sleep=sleep) as client:
        assert "keys" in await client.get_jwks()
    await proxy.stop()
    assert 2 <= counter.calls["GetJWKS"] <= 5
    assert len(slept) == counter.calls["GetJWKS"] - 1 and all(0 <= d <= 0.01 for d in slept)


async def test_backoff_is_exponential_with_full_jitter():
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.1, max_backoff=1.0, multiplier=2)
    assert [policy.ceiling(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    import random

    rng = random.Random(7)
    draws = [policy.backoff(3, rng) for _ in range(500)]
    assert all(0 <= d <= 0.4 for d in draws) and max(draws) > 0.35 and min(draws) < 0.05
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


async def test_retries_stay_within_the_calls_deadline():
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.05)
    c = make_client(dead_port(), False, retry=policy, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await c("get_jwks")
    assert time.monotonic() - started < 1.0
    assert 2 <= c.counter.calls["GetJWKS"] < 50
    await close(c)


async def test_every_call_has_a_deadline():
    # A peer that accepts the connection and never speaks HTTP/2.
    accepted: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for sync in (True, False):
        # gRPC's own connect timeout (20 s by default) is far beyond our deadline.
        c = make_client(port, sync, channel_options=[], retry=QUICK, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(AuthsvcError) as err:
            await c("get_jwks")
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.15 < time.monotonic() - started < 2.0
        assert c.counter.calls["GetJWKS"] == 1  # DEADLINE_EXCEEDED is not retried
        await close(c)
    server.close()
    for writer in accepted:
        writer.transport.abort()
