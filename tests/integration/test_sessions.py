"""Issue 4: refresh policy, races, throttling, session listing, revocation feed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest

from authsvc.domain.identity import accounts
from authsvc.domain.identity.passwords import Argon2Params, Passwords
from authsvc.errors import StoreUnavailable
from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import FakeClock
from .helpers import add_user, bearer, login, self_login
from .test_mfa import enrol

R = pb.InactiveReason


@pytest.fixture(scope="module")
async def grace(settings, database_url) -> AsyncIterator[tuple[App, pb_grpc.AuthServiceAsyncStub, FakeClock]]:
    """A replica whose policy has the grace window on and a low refresh cap."""
    policy = dataclasses.replace(settings.policy, refresh_grace=5, refresh_max_count=3)
    clock = FakeClock()
    async with (
        App(dataclasses.replace(settings, policy=policy), database_url, clock=clock) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch,
    ):
        yield app, pb_grpc.AuthServiceStub(ch), clock


async def refresh(stub, token: str) -> pb.TokenPair:
    return (await stub.Refresh(pb.RefreshRequest(refresh_token=token))).tokens


# refresh policy -------------------------------------------------------------


async def test_refresh_too_soon_is_throttled_with_a_retry_delay(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await refresh(stub, (await login(stub, user)).refresh_token)  # at once after login is fine
    clock.advance(0.5)
    call = stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(err.value.trailing_metadata())
    assert 1499 <= int(trailers["retry-after-ms"]) <= 1501  # 1.5 s, give or take stored-time rounding
    clock.advance(1.5)
    assert (await refresh(stub, pair.refresh_token)).access_token  # the token was not spent


async def test_old_login_must_reauthenticate(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    for _ in range(3):  # keep the session alive within its idle timeout
        clock.advance(7 * 3600)
        pair = await refresh(stub, pair.refresh_token)
    clock.advance(3 * 3600 + 1)  # just over 24 h since the password was typed
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await refresh(stub, pair.refresh_token)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "re-authentication required: log in again",
    )


async def test_refresh_count_is_capped(grace, store, passwords):
    _, stub, clock = grace
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    for _ in range(3):
        clock.advance(10)
        pair = await refresh(stub, pair.refresh_token)
    clock.advance(10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await refresh(stub, pair.refresh_token)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_grace_window_gives_the_same_pair_then_reuse_detection(grace, store, passwords):
    _, stub, clock = grace
    user = await add_user(store, passwords, clock)
    first = await login(stub, user)
    clock.advance(10)
    second = await refresh(stub, first.refresh_token)
    clock.advance(3)  # the client lost the answer and retries
    again = await refresh(stub, first.refresh_token)
    assert (again.access_token, again.refresh_token) == (second.access_token, second.refresh_token)
    clock.advance(3)  # now 6 s after the rotation: outside the 5 s window
    with pytest.raises(grpc.aio.AioRpcError):
        await refresh(stub, first.refresh_token)
    resp = await stub.Verify(pb.VerifyRequest(token=second.access_token, audience="orders"))
    assert resp.reason == R.INACTIVE_REASON_REVOKED


async def test_a_stale_token_cannot_walk_the_grace_windows_to_the_live_pair(grace, store, passwords):
    """Issue 12's repro: within grace, a spent token whose successor was used
    too is reuse, not a lost answer; before, T0 gave R1, and R1 gave the
    legitimate client's live R2 and A2, with no reuse ever detected."""
    _, stub, clock = grace
    user = await add_user(store, passwords, clock)
    t0 = await login(stub, user)
    r1 = await refresh(stub, t0.refresh_token)  # the client: T0 -> R1
    clock.advance(2.2)
    r2 = await refresh(stub, r1.refresh_token)  # the client: R1 -> R2, within T0's 5 s window
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await refresh(stub, t0.refresh_token)  # a copy of T0 comes back
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError):
        await refresh(stub, r1.refresh_token)  # and nothing down the chain is handed out
    resp = await stub.Verify(pb.VerifyRequest(token=r2.access_token, audience="orders"))
    assert resp.reason == R.INACTIVE_REASON_REVOKED  # reuse detected: the session is over
    assert (await store.session(t0.session_id)).revoked_at is not None


async def test_fifty_concurrent_refreshes_with_grace_all_get_the_same_pair(grace, store, passwords):
    _, stub, clock = grace
    user = await add_user(store, passwords, clock)
    first = await login(stub, user)
    clock.advance(10)
    pairs = await asyncio.gather(*(refresh(stub, first.refresh_token) for _ in range(50)))
    assert len({(p.access_token, p.refresh_token) for p in pairs}) == 1
    assert (await store.session(first.session_id)).refresh_count == 1


async def test_fifty_concurrent_refreshes_without_grace_one_winner(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    first = await login(stub, user)
    clock.advance(3)
    results = await asyncio.gather(*(refresh(stub, first.refresh_token) for _ in range(50)), return_exceptions=True)
    assert sum(isinstance(r, pb.TokenPair) for r in results) == 1
    assert all(r.code() == grpc.StatusCode.UNAUTHENTICATED for r in results if not isinstance(r, pb.TokenPair))


async def test_refresh_racing_a_revoke_never_leaves_a_live_token(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    owner = (await self_login(stub, user)).access_token  # may revoke the user's sessions
    for _ in range(15):
        pair = await login(stub, user)
        clock.advance(3)
        outcome, _ = await asyncio.gather(
            refresh(stub, pair.refresh_token),
            stub.Revoke(pb.RevokeRequest(session_id=pair.session_id), metadata=bearer(owner)),
            return_exceptions=True,
        )
        assert (await store.session(pair.session_id)).revoked_at is not None
        if isinstance(outcome, pb.TokenPair):  # the refresh won the race: its token must be dead all the same
            resp = await stub.Verify(pb.VerifyRequest(token=outcome.access_token, audience="orders"))
            assert resp.reason == R.INACTIVE_REASON_REVOKED
            clock.advance(3)
            with pytest.raises(grpc.aio.AioRpcError):
                await refresh(stub, outcome.refresh_token)


# throttling ------------------------------------------------------------------


async def wrong_login(stub, username: str):
    request = pb.IssueRequest(password=pb.PasswordCredential(username=username, password="not the password"))
    try:
        await stub.Issue(request)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_fifty_parallel_wrong_passwords_get_no_more_than_the_limit(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    codes = await asyncio.gather(*(wrong_login(stub, user.name) for _ in range(50)))
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == 5  # checked against the hash: the limit
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 45
    assert (await store.audit_events(user.id)).count("login_failed") == 5
    # Locked now, even with the right password; the lockout then lapses.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await login(stub, user)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 0 < int(dict(err.value.trailing_metadata())["retry-after-ms"]) <= 30_000
    clock.advance(31)
    assert (await login(stub, user)).access_token


async def test_throttling_looks_the_same_for_unknown_users(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    known = [await wrong_login(stub, user.name) for _ in range(7)]
    unknown = [await wrong_login(stub, "ghost-" + user.name) for _ in range(7)]
    assert known == unknown == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    clock.advance(3600)


async def test_lockouts_grow(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    waits = []
    for _ in range(3):
        for _ in range(6):
            code = await wrong_login(stub, user.name)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await login(stub, user)
        waits.append(int(dict(err.value.trailing_metadata())["retry-after-ms"]))
        clock.advance(waits[-1] / 1000 + 1)
    assert waits[0] < waits[1] < waits[2]
    assert (await login(stub, user)).access_token


async def right_password(stub, user, way: str) -> grpc.StatusCode:
    credential = pb.PasswordCredential(username=user.name, password=user.password)
    audience = ["not-granted"] if way == "audience refused" else []
    try:
        response = await stub.Issue(pb.IssueRequest(password=credential, audience=audience))
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK if response.WhichOneof("result") == "tokens" else grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("way", "answer"),
    [
        ("tokens", grpc.StatusCode.OK),
        ("audience refused", grpc.StatusCode.PERMISSION_DENIED),
        ("mfa challenge", grpc.StatusCode.UNAUTHENTICATED),  # a challenge, not tokens
    ],
)
async def test_the_right_password_clears_the_account_counter_whatever_follows(
    way, answer, stub, store, passwords, clock
):
    user = await add_user(store, passwords, clock)
    if way == "mfa challenge":
        await enrol(stub, user, clock)
    codes = [await wrong_login(stub, user.name) for _ in range(4)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 4  # one attempt left of 5
    assert await right_password(stub, user, way) == answer
    # A fresh start: five more wrong guesses are checked, the sixth is refused.
    codes = [await wrong_login(stub, user.name) for _ in range(6)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    clock.advance(3600)


async def test_a_right_password_whose_rehash_fails_is_not_left_counted(stub, store, clock, monkeypatch):
    """A hash stored with older parameters is rehashed at login, which takes a
    hash's time; the counter is cleared before it, so a login that ends there
    (the store fails, the caller goes away) does not count as a guess."""
    old = Passwords(Argon2Params(time_cost=1, memory_kib=8192))
    try:
        user = await add_user(store, old, clock)
    finally:
        old.close()
    assert [await wrong_login(stub, user.name) for _ in range(4)] == [grpc.StatusCode.UNAUTHENTICATED] * 4

    async def unavailable(user_id: str, password_hash: str) -> None:
        raise StoreUnavailable()

    with monkeypatch.context() as patch:
        patch.setattr(store, "set_password_hash", unavailable)
        assert await right_password(stub, user, "tokens") == grpc.StatusCode.UNAVAILABLE
    codes = [await wrong_login(stub, user.name) for _ in range(6)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    clock.advance(3600)
    assert await right_password(stub, user, "tokens") == grpc.StatusCode.OK
    stored = await store.user_by_name(user.name)
    assert stored is not None and ",t=2," in stored.password_hash  # rehashed with today's parameters


# sessions --------------------------------------------------------------------


async def test_list_sessions_shows_what_each_refresh_recorded(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    other = await add_user(store, passwords, clock)
    first = await self_login(stub, user)
    await login(stub, user)
    clock.advance(5)
    await refresh(stub, first.refresh_token)
    resp = await stub.ListSessions(pb.ListSessionsRequest(), metadata=bearer(first.access_token))
    assert len(resp.sessions) == 2
    mine = next(s for s in resp.sessions if s.session_id == first.session_id)
    assert mine.refresh_count == 1 and mine.last_refresh_at.seconds == int(clock.now())
    assert mine.peer.startswith("ipv4:127.0.0.1") and "grpc-python" in mine.user_agent
    theirs = await self_login(stub, other)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListSessions(pb.ListSessionsRequest(subject=user.id), metadata=bearer(theirs.access_token))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_password_change_and_mfa_reset_revoke_everything(app, stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    assert await accounts.change_password(store, passwords, clock, app.deps.policy, user.id, "a new passphrase") == 1
    await app.sync_now()  # the CLI's NOTIFY would do this within milliseconds
    resp = await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders"))
    assert resp.reason == R.INACTIVE_REASON_REVOKED
    with pytest.raises(grpc.aio.AioRpcError):
        await login(stub, user)  # the old password is gone
    clock.advance(1)
    new_credential = pb.PasswordCredential(username=user.name, password="a new passphrase")
    fresh = await stub.Issue(pb.IssueRequest(password=new_credential))
    assert await accounts.reset_mfa(store, clock, app.deps.policy, user.id) == 1
    await app.sync_now()
    resp = await stub.Verify(pb.VerifyRequest(token=fresh.tokens.access_token, audience="orders"))
    assert resp.reason == R.INACTIVE_REASON_REVOKED


# revocation feed ---------------------------------------------------------------


async def test_watch_revocations_replays_then_streams_live(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    before = await login(stub, user)
    await stub.Revoke(pb.RevokeRequest(token=before.access_token))
    stream = stub.WatchRevocations(pb.WatchRevocationsRequest(cursor=0))
    seen = []
    after = await login(stub, user)

    async def read_until(value: str) -> None:
        async for event in stream:
            seen.append(event)
            if event.value == value:
                return

    first_jti = (await stub.Verify(pb.VerifyRequest(token=after.access_token, audience="orders"))).claims.jti
    await asyncio.wait_for(read_until(_jti(before.access_token)), 10)
    await asyncio.wait_for(read_until(""), 10)  # the caught-up marker ends the backlog
    assert seen[-1].kind == pb.RevocationEvent.KIND_CAUGHT_UP and seen[-1].seq == 0
    await stub.Revoke(pb.RevokeRequest(token=after.access_token))
    await asyncio.wait_for(read_until(first_jti), 10)
    stream.cancel()
    events = [e for e in seen if e.kind != pb.RevocationEvent.KIND_CAUGHT_UP]
    assert events[-1].kind == pb.RevocationEvent.KIND_JTI
    assert events[-1].resume_cursor <= events[-1].seq
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    # Resuming from the last cursor gives nothing older than it.
    resumed = stub.WatchRevocations(pb.WatchRevocationsRequest(cursor=events[-1].seq))
    assert (await asyncio.wait_for(resumed.read(), 10)).kind == pb.RevocationEvent.KIND_CAUGHT_UP
    await stub.Revoke(pb.RevokeRequest(token=(await login(stub, user)).access_token))
    event = await asyncio.wait_for(resumed.read(), 10)
    assert event.seq > events[-1].seq
    resumed.cancel()


async def test_watch_revocations_sends_a_long_backlog_in_full(app, stub, store, clock):
    """More revocations than one page of the log: every one arrives before the
    caught-up marker (a verifier that missed some would accept revoked tokens)."""
    for start in range(0, 6_000, 1_000):
        async with store._pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO revocations (kind, value, revoked_at, expires_at) VALUES ('jti', $1, now(), $2)",
                [(f"bulk-{start + i}", datetime.fromtimestamp(clock.now() + 600, UTC)) for i in range(1_000)],
            )
    values = set()
    async for event in stub.WatchRevocations(pb.WatchRevocationsRequest(cursor=0)):
        if event.kind == pb.RevocationEvent.KIND_CAUGHT_UP:
            break
        values.add(event.value)
    assert {f"bulk-{i}" for i in range(6_000)} <= values


def _jti(token: str) -> str:
    import base64
    import json

    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["jti"]


async def test_ended_sessions_challenges_and_counters_are_forgotten(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    await wrong_login(stub, "nobody-" + user.name)
    later = clock.now() + 7 * 24 * 3600 + 86_400 + 1  # past the session's lifetime, plus a day kept
    counts = await store.prune_expired(later)
    assert counts["sessions"] >= 1 and counts["throttle"] >= 1
    assert await store.session(pair.session_id) is None
    query = "SELECT count(*) FROM refresh_tokens WHERE session_id = $1::uuid"
    left = await store._pool.fetchval(query, pair.session_id)
    assert left == 0


async def test_a_login_that_proved_itself_before_a_revoke_cannot_open_a_session_after_it(app, store, passwords, clock):
    """The race of a login with 'log out everywhere' (or a password change):
    the password was checked, then every session was revoked, then the login
    tries to open its session. It must not survive the revoke."""
    from authsvc.domain.models import CallInfo
    from authsvc.domain.sessions.grants import new_session

    user = await add_user(store, passwords, clock)
    checked_at = clock.now()
    clock.advance(1)
    await store.revoke_subject(user.id, clock.now(), clock.now() + 400)
    session, record, _ = new_session(
        app.deps, user_id=user.id, audiences=("orders",), scopes=("read",), amr=("pwd",),
        auth_time=checked_at, call=CallInfo(),
    )  # fmt: skip
    assert await store.create_session(session, record) is False
    assert await store.session(session.id) is None
    clock.advance(1)
    later, record, _ = new_session(
        app.deps, user_id=user.id, audiences=("orders",), scopes=("read",), amr=("pwd",),
        auth_time=clock.now(), call=CallInfo(),
    )  # fmt: skip
    assert await store.create_session(later, record) is True  # a login after the revoke is fine


async def test_watch_streams_are_capped_per_replica(app, stub, monkeypatch):
    from authsvc.domain.tokens import live

    monkeypatch.setattr(live, "MAX_WATCHERS", len(app.deps.live._subscribers) + 1)
    first = stub.WatchRevocations(pb.WatchRevocationsRequest(cursor=2**62))  # nothing to replay
    assert (await asyncio.wait_for(first.read(), 10)).kind == pb.RevocationEvent.KIND_CAUGHT_UP
    second = stub.WatchRevocations(pb.WatchRevocationsRequest(cursor=2**62))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(second.read(), 10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(dict(err.value.trailing_metadata())["retry-after-ms"]) == 5000
    first.cancel()
