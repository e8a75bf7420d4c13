"""Refresh: rotation, reuse detection, races, limits of the session."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from .helpers import add_user, login

R = pb.InactiveReason


async def refresh(stub, token: str, scope=(), clock=None) -> pb.TokenPair:
    if clock is not None:
        clock.advance(3)  # past the minimum interval between refreshes (2 s)
    resp = await stub.Refresh(pb.RefreshRequest(refresh_token=token, scope=list(scope)))
    return resp.tokens


async def test_rotation_spends_the_old_token_and_updates_the_session(app, stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    first = await login(stub, user)
    clock.advance(10)
    options = (("grpc.primary_user_agent", "orders-app/2.0"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}", options=options) as channel:
        second = await refresh(pb_grpc.AuthServiceStub(channel), first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.session_id == first.session_id
    verified = await stub.Verify(pb.VerifyRequest(token=second.access_token, audience="orders"))
    assert verified.active and verified.claims.sid == first.session_id
    session = await store.session(first.session_id)
    assert session.refresh_count == 1
    assert session.last_refresh_at == pytest.approx(clock.now())
    assert session.user_agent.startswith("orders-app/2.0")
    assert session.peer.startswith("ipv4:127.0.0.1") or session.peer.startswith("ipv6:")


async def test_reuse_of_a_spent_token_revokes_the_whole_session(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    first = await login(stub, user)
    second = await refresh(stub, first.refresh_token, clock=clock)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await refresh(stub, first.refresh_token, clock=clock)  # the thief, or a confused client
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The legitimate holder's pair is dead too: refresh token and access token.
    with pytest.raises(grpc.aio.AioRpcError):
        await refresh(stub, second.refresh_token, clock=clock)
    verified = await stub.Verify(pb.VerifyRequest(token=second.access_token, audience="orders"))
    assert verified.reason == R.INACTIVE_REASON_REVOKED
    assert "refresh_reuse_detected" in await store.audit_events(user.id)


async def test_twenty_concurrent_refreshes_give_exactly_one_pair(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    first = await login(stub, user)
    clock.advance(3)
    results = await asyncio.gather(*(refresh(stub, first.refresh_token) for _ in range(20)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, pb.TokenPair)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 19
    assert {e.code() for e in losers} == {grpc.StatusCode.UNAUTHENTICATED}
    rows = await store._pool.fetch(
        "SELECT count(*) AS n FROM refresh_tokens WHERE session_id = $1::uuid", first.session_id
    )
    assert rows[0]["n"] == 2  # the spent one and exactly one successor


async def test_narrower_scope_allowed_wider_never(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock, scopes=("read", "write"))
    pair = await login(stub, user)
    narrow = await refresh(stub, pair.refresh_token, scope=["read"], clock=clock)
    assert list(narrow.scope) == ["read"]
    # The refresh token keeps the session's grant (RFC 6749 section 6).
    again = await refresh(stub, narrow.refresh_token, clock=clock)
    assert sorted(again.scope) == ["read", "write"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await refresh(stub, again.refresh_token, scope=["read", "admin"], clock=clock)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_idle_refresh_token_expires(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    clock.advance(24 * 3600 + 1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await refresh(stub, pair.refresh_token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_bad_refresh_tokens(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    token_id, secret = pair.refresh_token.split(".")
    for bad in ("garbage", f"{token_id}.{secret[:-1]}x", f"nosuchid.{secret}", pair.access_token, "a.b.c"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await refresh(stub, bad)
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
    # A wrong secret for a real id is not reuse: the session lives on.
    assert (await refresh(stub, pair.refresh_token, clock=clock)).access_token
