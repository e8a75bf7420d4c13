"""TokenVerifier against the real in-process authsvc: cold and cached
verification, rules re-applied on every cache hit, unknown kids, the
revocation stream (drops, resume, staleness) with a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from authsvc.domain.models import Revocation
from authsvc.domain.sessions.revocation_set import RevocationSet as ServerRevocationSet
from authsvc.server import App
from authsvc_client import (
    AccessClaims,
    AsyncAuthClient,
    ClientCredential,
    PasswordCredential,
    Reason,
    Requirements,
    RevocationEvent,
    TokenPair,
    TokenRejected,
    TokenVerifier,
    VerifierUnavailable,
    pb,
)
from authsvc_client._jose import b64url_encode, json_bytes, sign
from authsvc_client._revocations import RevocationSet

from ..integration.helpers import add_client, add_user, bearer
from ..support import FakeClock
from .helpers import FAST_RECONNECT, AsyncCounter, TcpProxy, dead_port, eventually

ORDERS = Requirements(audience="orders")


@pytest.fixture
async def client(authsvc) -> AsyncIterator[AsyncAuthClient]:
    async with AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{authsvc.port}", options=FAST_RECONNECT)) as c:
        yield c


def verifier_for(client, settings, clock, **options) -> TokenVerifier:
    options.setdefault("reconnect_backoff", (0.01, 0.05))
    return TokenVerifier(client, issuer=settings.policy.issuer, clock=clock.now, **options)


@pytest.fixture
async def verifier(client, settings, fake_clock) -> AsyncIterator[TokenVerifier]:
    v = verifier_for(client, settings, fake_clock)
    await v.start()
    yield v
    await v.close()


async def user_token(client: AsyncAuthClient, store, passwords, fake_clock, **user) -> str:
    u = await add_user(store, passwords, fake_clock, **user)
    pair = await client.issue(PasswordCredential(u.name, u.password))
    assert isinstance(pair, TokenPair)
    return pair.access_token


async def rejected(verifier: TokenVerifier, token: str, requirements: Requirements = ORDERS) -> Reason:
    with pytest.raises(TokenRejected) as err:
        await verifier.verify(token, requirements)
    return err.value.reason


def forged(kid: str, now: float, key: ed25519.Ed25519PrivateKey | None = None) -> str:
    """A well-formed access token signed by a key authsvc never published."""
    header = b64url_encode(json_bytes({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}))
    claims = {"iss": "authsvc-test", "sub": "mallory", "aud": ["orders"], "exp": int(now) + 300,
              "iat": int(now), "jti": secrets.token_hex(8)}  # fmt: skip
    payload = b64url_encode(json_bytes(claims))
    signature = sign("EdDSA", key or ed25519.Ed25519PrivateKey.generate(), f"{header}.{payload}".encode())
    return f"{header}.{payload}.{b64url_encode(signature)}"


# --- verification and the cache ----------------------------------------------------


async def test_cold_then_cached_verify_agree_with_the_server(verifier, client, store, passwords, fake_clock):
    token = await user_token(client, store, passwords, fake_clock)
    assert verifier.stats.stream_up and not verifier.stats.stale
    cold = await verifier.verify(token, Requirements(audience="orders", scopes=("read",)))
    assert (verifier.stats.misses, verifier.stats.hits, verifier.stats.cached) == (1, 0, 1)
    warm = await verifier.verify(token, Requirements(audience="orders", scopes=("write",)))
    assert (verifier.stats.misses, verifier.stats.hits) == (1, 1)
    assert warm is cold
    remote = await client.verify(token, ORDERS)
    assert remote.active and remote.claims == cold
    for bad in ("", "garbage", "a.b.c", token[:-4] + "AAAA"):
        assert await rejected(verifier, bad) in (Reason.MALFORMED, Reason.BAD_SIGNATURE)
    assert verifier.stats.cached == 1  # rejections are never cached


async def test_a_cached_entry_never_loosens_a_rule(client, settings, fake_clock, store, passwords):
    own = FakeClock(fake_clock.now())
    verifier = verifier_for(client, settings, own)
    await verifier.start()
    try:
        token = await user_token(client, store, passwords, fake_clock)
        await verifier.verify(token, ORDERS)  # cached with the loosest requirements
        hits = verifier.stats.hits
        assert await rejected(verifier, token, Requirements(audience="billing")) is Reason.WRONG_AUDIENCE
        assert await rejected(verifier, token, Requirements("orders", scopes=("admin",))) is Reason.MISSING_SCOPE
        assert await rejected(verifier, token, Requirements("orders", scopes=("read", "x"))) is Reason.MISSING_SCOPE
        own.advance(120)
        assert await rejected(verifier, token, Requirements("orders", max_auth_age=60)) is Reason.AUTH_TOO_OLD
        assert await verifier.verify(token, Requirements("orders", max_auth_age=600))
        assert verifier.stats.hits == hits + 5 and verifier.stats.misses == 1  # all answered from the cache
        own.advance(300 + 30)  # past exp plus the leeway
        assert await rejected(verifier, token) is Reason.EXPIRED
        assert verifier.stats.cached == 0  # held until exp, no longer
    finally:
        await verifier.close()


async def test_the_cache_is_bounded(client, settings, fake_clock, store, passwords):
    verifier = verifier_for(client, settings, fake_clock, cache_size=2)
    await verifier.start()
    try:
        tokens = [await user_token(client, store, passwords, fake_clock) for _ in range(3)]
        for token in tokens:
            await verifier.verify(token, ORDERS)
        assert verifier.stats.cached == 2
        await verifier.verify(tokens[0], ORDERS)  # evicted first: verified again, from cold
        assert verifier.stats.misses == 4
    finally:
        await verifier.close()


# --- keys ----------------------------------------------------------------------------


async def test_unknown_kid_refreshes_at_most_once_per_interval_then_fails_closed(client, settings, fake_clock):
    own = FakeClock(fake_clock.now())
    fetched: list[float] = []

    async def fetch() -> str:
        fetched.append(own.now())
        return await client.get_jwks()

    verifier = verifier_for(client, settings, own, fetch_jwks=fetch, key_refresh_interval=30)
    await verifier.start()
    try:
        assert len(fetched) == 1
        assert await rejected(verifier, forged("rogue-1", own.now())) is Reason.UNKNOWN_KEY
        assert len(fetched) == 2  # one refresh, then closed
        results = await asyncio.gather(
            *(verifier.verify(forged(f"rogue-{i}", own.now()), ORDERS) for i in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, TokenRejected) and r.reason is Reason.UNKNOWN_KEY for r in results)
        own.advance(29)
        assert await rejected(verifier, forged("rogue-2", own.now())) is Reason.UNKNOWN_KEY
        assert len(fetched) == 2  # rate-limited: no refresh inside the interval
        own.advance(2)
        assert await rejected(verifier, forged("rogue-3", own.now())) is Reason.UNKNOWN_KEY
        assert len(fetched) == 3
        assert verifier.stats.key_fetches == 3
    finally:
        await verifier.close()


async def test_a_new_key_is_found_by_one_refresh(client, settings, fake_clock, store, passwords):
    answers = ['{"keys": []}']  # what the verifier saw before authsvc published its key

    async def fetch() -> str:
        return answers.pop(0) if answers else await client.get_jwks()

    verifier = verifier_for(client, settings, fake_clock, fetch_jwks=fetch)
    await verifier.start()
    try:
        token = await user_token(client, store, passwords, fake_clock)
        assert (await verifier.verify(token, ORDERS)).aud == ("orders",)
        assert verifier.stats.key_fetches == 2
    finally:
        await verifier.close()


async def test_a_withdrawn_key_empties_the_cache(client, settings, fake_clock, store, passwords):
    own = FakeClock(fake_clock.now())
    withdrawn = False

    async def fetch() -> str:
        return '{"keys": []}' if withdrawn else await client.get_jwks()

    verifier = verifier_for(client, settings, own, fetch_jwks=fetch, keys_max_age=60, key_refresh_interval=10)
    await verifier.start()
    try:
        token = await user_token(client, store, passwords, fake_clock)
        await verifier.verify(token, ORDERS)
        withdrawn = True
        own.advance(61)
        await verifier.verify(token, ORDERS)  # still the old key set; a refresh starts behind it
        await eventually(lambda: verifier.stats.key_fetches == 2)
        await eventually(lambda: verifier.stats.cached == 0)
        assert await rejected(verifier, token) is Reason.UNKNOWN_KEY
    finally:
        await verifier.close()


# --- revocations ---------------------------------------------------------------------


async def test_revocations_arrive_through_the_stream_and_drop_cached_entries(
    verifier, client, authsvc_stub, store, passwords, fake_clock
):
    user = await add_user(store, passwords, fake_clock)
    first = await client.issue(PasswordCredential(user.name, user.password))
    second = await client.issue(PasswordCredential(user.name, user.password))
    service = await add_client(store, fake_clock, audiences=("orders", "authsvc"))
    machine = await client.issue(ClientCredential(service.id, service.secret))
    tokens = (first.access_token, second.access_token, machine.access_token)
    for token in tokens:
        await verifier.verify(token, ORDERS)
    assert verifier.stats.cached == 3
    cursor = verifier.stats.cursor

    assert await client.revoke(first.access_token) == 1  # by jti
    await eventually(lambda: verifier.stats.cached == 2)
    misses = verifier.stats.misses
    assert await rejected(verifier, first.access_token) is Reason.REVOKED
    assert verifier.stats.misses == misses + 1  # dropped, so checked from cold and refused
    assert verifier.stats.cursor > cursor

    assert await client.revoke(second.refresh_token) == 1  # ends the session: by sid
    await eventually(lambda: verifier.stats.cached == 1)
    assert await rejected(verifier, second.access_token) is Reason.REVOKED

    admin = await add_user(store, passwords, fake_clock, scopes=("authsvc:admin",))
    own = await client.issue(PasswordCredential(admin.name, admin.password), audience=["authsvc"])
    admin_token = own.access_token
    await authsvc_stub.Revoke(pb.RevokeRequest(subject=service.id), metadata=bearer(admin_token))
    await eventually(lambda: verifier.stats.cached == 0)  # a session-less token: cut by subject and iat
    assert await rejected(verifier, machine.access_token) is Reason.REVOKED
    fake_clock.advance(1)
    later = await client.issue(ClientCredential(service.id, service.secret))
    assert (await verifier.verify(later.access_token, ORDERS)).sub == service.id  # minted after the cut

    for token in tokens:  # the server agrees with every local verdict
        assert (await client.verify(token, ORDERS)).reason is Reason.REVOKED


@pytest.fixture
async def proxy(authsvc) -> AsyncIterator[TcpProxy]:
    p = TcpProxy(authsvc.port)
    await p.start()
    yield p
    await p.stop()


async def proxied_verifier(proxy, settings, fake_clock, **options):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}", options=FAST_RECONNECT)
    verifier = verifier_for(AsyncAuthClient(channel), settings, fake_clock, **options)
    await verifier.start()
    assert verifier.stats.stream_up
    return verifier, channel


async def test_a_dropped_stream_resumes_from_its_cursor(proxy, client, settings, fake_clock, store, passwords):
    own = FakeClock(fake_clock.now())
    verifier, channel = await proxied_verifier(proxy, settings, own, max_staleness=30)
    try:
        token = await user_token(client, store, passwords, fake_clock)
        await verifier.verify(token, ORDERS)
        await proxy.stop()
        await eventually(lambda: not verifier.stats.stream_up)
        assert await client.revoke(token) == 1  # while the verifier cannot hear it
        own.advance(29)
        assert not verifier.stats.stale
        assert await verifier.verify(token, ORDERS)  # the window max_staleness allows
        await proxy.start()
        await eventually(lambda: verifier.stats.stream_up)
        await eventually(lambda: verifier.stats.cached == 0)  # the missed event, resent from the cursor
        assert await rejected(verifier, token) is Reason.REVOKED
    finally:
        await verifier.close()
        await channel.close()


async def test_a_stream_down_too_long_fails_closed(proxy, client, settings, fake_clock, store, passwords):
    own = FakeClock(fake_clock.now())
    verifier, channel = await proxied_verifier(proxy, settings, own, max_staleness=30, on_stale="fail_closed")
    try:
        token = await user_token(client, store, passwords, fake_clock)
        await verifier.verify(token, ORDERS)
        await proxy.stop()
        await eventually(lambda: not verifier.stats.stream_up)
        own.advance(31)
        assert verifier.stats.stale
        with pytest.raises(VerifierUnavailable):
            await verifier.verify(token, ORDERS)  # cached or not: no verdict without revocations
        await proxy.start()
        await eventually(lambda: verifier.stats.stream_up)
        assert not verifier.stats.stale
        assert await verifier.verify(token, ORDERS)
    finally:
        await verifier.close()
        await channel.close()


async def test_a_verifier_never_in_sync_fails_closed(settings, fake_clock, store, passwords, client):
    nowhere = AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{dead_port()}"))

    async def fetch() -> str:
        return await client.get_jwks()

    verifier = verifier_for(nowhere, settings, fake_clock, fetch_jwks=fetch)
    await verifier.start(wait=0.2)
    try:
        assert verifier.stats.stale and not verifier.stats.stream_up
        token = await user_token(client, store, passwords, fake_clock)
        with pytest.raises(VerifierUnavailable):
            await verifier.verify(token, ORDERS)
    finally:
        await verifier.close()
        await nowhere.close()


class SplitClient(AsyncAuthClient):
    """Unary calls straight to authsvc, the watch stream through another path
    (as behind a balancer that cuts long-lived streams)."""

    def __init__(self, channel: grpc.aio.Channel, watch: AsyncAuthClient) -> None:
        super().__init__(channel)
        self._watch = watch

    def watch_revocations(self, cursor=0, **options):
        return self._watch.watch_revocations(cursor, **options)


async def test_a_stream_down_too_long_falls_back_to_the_verify_rpc(
    authsvc, proxy, settings, fake_clock, store, passwords
):
    own = FakeClock(fake_clock.now())
    counter = AsyncCounter()
    direct = grpc.aio.insecure_channel(f"127.0.0.1:{authsvc.port}", interceptors=[counter])
    watch = AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}", options=FAST_RECONNECT))
    client = SplitClient(direct, watch)
    verifier = verifier_for(client, settings, own, max_staleness=30, on_stale="verify_rpc")
    await verifier.start()
    try:
        good = await user_token(client, store, passwords, fake_clock)
        doomed = await user_token(client, store, passwords, fake_clock)
        await proxy.stop()
        await eventually(lambda: not verifier.stats.stream_up)
        own.advance(31)
        assert verifier.stats.stale
        assert (await verifier.verify(good, ORDERS)).aud == ("orders",)
        assert counter.calls["Verify"] == 1
        assert await client.revoke(doomed) == 1  # the stream cannot say so; authsvc can
        assert await rejected(verifier, doomed) is Reason.REVOKED
        assert counter.calls["Verify"] == 2
        # Forgeries and broken requirements are refused locally, without a call.
        assert await rejected(verifier, forged("rogue", own.now())) is Reason.UNKNOWN_KEY
        assert await rejected(verifier, good, Requirements(audience="billing")) is Reason.WRONG_AUDIENCE
        assert counter.calls["Verify"] == 2
    finally:
        await verifier.close()
        await client.close()
        await watch.close()


async def test_the_stale_fallback_fails_closed_when_authsvc_is_gone_too(
    proxy, client, settings, fake_clock, store, passwords
):
    own = FakeClock(fake_clock.now())
    verifier, channel = await proxied_verifier(proxy, settings, own, max_staleness=30, on_stale="verify_rpc")
    try:
        token = await user_token(client, store, passwords, fake_clock)
        await proxy.stop()
        await eventually(lambda: not verifier.stats.stream_up)
        own.advance(31)
        with pytest.raises(VerifierUnavailable):
            await verifier.verify(token, ORDERS)
    finally:
        await verifier.close()
        await channel.close()


# --- the same semantics as the server's own revocation set ------------------------------


def test_local_revocation_set_has_the_server_semantics():
    now = 1_000_000.0
    entries = [
        Revocation(1, "jti", "j-1", now, now + 600),
        Revocation(2, "session", "s-1", now, now + 600),
        Revocation(3, "subject", "svc-1", now, now + 600),
        Revocation(4, "subject", "user-1", now, now + 600),
        Revocation(5, "subject", "svc-1", now - 100, now + 900),  # an older cut, late: the later one stands
    ]
    server, local = ServerRevocationSet(), RevocationSet()
    server.apply(entries, now)
    for e in entries:
        assert local.add(RevocationEvent(e.seq, e.kind, e.value, e.revoked_at, e.expires_at, e.seq))
        local.add(RevocationEvent(e.seq, e.kind, e.value, e.revoked_at, e.expires_at, e.seq))  # repeats are harmless
    assert not local.add(RevocationEvent(6, "unknown", "x", now, now + 1, 6))

    def claims(sub: str, jti: str = "j-x", sid: str = "", iat: float = now) -> AccessClaims:
        return AccessClaims(iss="i", sub=sub, aud=("a",), exp=int(iat) + 300, iat=int(iat), nbf=0, jti=jti, sid=sid)

    grid = [
        claims("anyone", jti="j-1"),
        claims("anyone", jti="j-1", sid="s-9"),
        claims("user-1", sid="s-1"),
        claims("user-1", sid="s-2"),  # a user's sessions are revoked by id, not by subject
        claims("svc-1", iat=now - 1),
        claims("svc-1", iat=now),  # the same second: revoked (the safe side of the tie)
        claims("svc-1", iat=now + 1),  # minted after the cut
        claims("svc-2"),
    ]
    verdicts = [local.is_revoked(c) for c in grid]
    assert verdicts == [server.is_revoked(c) for c in grid]
    assert verdicts == [True, True, True, False, True, True, False, False]
    for later in (now + 700, now + 1000):
        server.prune(later)
        local.prune(later)
        assert [local.is_revoked(c) for c in grid] == [server.is_revoked(c) for c in grid]
    assert len(local) == len(server) == 0


# --- nested (encrypted) tokens ----------------------------------------------------------


async def test_tokens_encrypted_to_the_audience_are_opened_locally(settings, database_url, store, fake_clock):
    from jwcrypto import jwk

    from authsvc.domain.tokens.encryption import parse_audience_key

    policy = dataclasses.replace(settings.policy, encrypt_tokens=True)
    encrypting = dataclasses.replace(settings, policy=policy)
    async with App(encrypting, database_url, clock=FakeClock(fake_clock.now())) as app:
        private = jwk.JWK.generate(kty="EC", crv="P-256")
        public = {**private.export_public(as_dict=True), "alg": "ECDH-ES+A256KW", "use": "enc"}
        key = parse_audience_key("sealed", json.dumps(public))
        await store.set_audience_key(key, app.clock.now())
        await app.maintain_keys()
        service = await add_client(store, fake_clock, audiences=("sealed",))
        async with AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")) as client:
            token = (await client.issue(ClientCredential(service.id, service.secret))).access_token
            assert token.count(".") == 4  # JWE compact
            opener = TokenVerifier(
                client, issuer=settings.policy.issuer, clock=app.clock.now, decryption_keys={key.kid: private},
            )  # fmt: skip
            blind = TokenVerifier(client, issuer=settings.policy.issuer, clock=app.clock.now)
            for v in (opener, blind):
                await v.start()
            try:
                assert (await opener.verify(token, Requirements(audience="sealed"))).sub == service.id
                assert await rejected(blind, token, Requirements(audience="sealed")) is Reason.MALFORMED
            finally:
                for v in (opener, blind):
                    await v.close()
