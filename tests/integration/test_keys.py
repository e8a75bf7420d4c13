"""Issue 3: key rotation without downtime, retirement, revocation, KEK key_rotation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import grpc
import pyotp
import pytest

from authsvc.domain.tokens import kek_rotation, key_rotation
from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import FakeClock, create_database, drop_database
from .helpers import add_client, add_user, bearer, self_login

R = pb.InactiveReason
KEK_A = "a:" + "A" * 43
KEK_B = "b:" + "B" * 43


@pytest.fixture
async def own_db(admin_url) -> AsyncIterator[str]:
    url = await create_database(admin_url, "authsvc_keys")
    yield url
    await drop_database(admin_url, url)


async def kids(stub) -> list[str]:
    return [k["kid"] for k in json.loads((await stub.GetJWKS(pb.GetJWKSRequest())).jwks_json)["keys"]]


async def test_two_rotations_without_a_failed_verify(settings, own_db):
    # A one-minute publish lead, so that a token from before both rotations is
    # still unexpired at the end and shows the retired key still verifies.
    settings = dataclasses.replace(settings, policy=dataclasses.replace(settings.policy, key_publish_lead=60))
    clock = FakeClock()
    async with App(settings, own_db, clock=clock) as a, App(settings, own_db, clock=clock) as b:
        store, policy, kek = a.deps.store, a.deps.policy, a.deps.kek
        client = await add_client(store, clock)
        cred = pb.IssueRequest(client=pb.ClientCredential(client_id=client.id, client_secret=client.secret))
        failures: list[int] = []
        verified = 0
        stop = asyncio.Event()
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ca,
            grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as cb,
        ):
            issuer, verifier = pb_grpc.AuthServiceStub(ca), pb_grpc.AuthServiceStub(cb)
            tokens = [(await issuer.Issue(cred)).tokens.access_token]

            async def traffic() -> None:
                nonlocal verified
                while not stop.is_set():
                    tokens.append((await issuer.Issue(cred)).tokens.access_token)
                    for token in (tokens[0], tokens[-1]):  # the oldest and the newest
                        resp = await verifier.Verify(pb.VerifyRequest(token=token, audience="orders"))
                        verified += 1
                        if not resp.active:
                            failures.append(resp.reason)

            running = asyncio.ensure_future(traffic())
            signers = set()
            for _ in range(2):
                clock.advance(policy.key_publish_lead + 1)
                await key_rotation.rotate(store, kek, policy, clock)
                await a.maintain_keys()  # a signs with the new key; b has not reloaded
                signers.add(a.deps.live.keyring.signer.kid)
                await asyncio.sleep(0.05)  # traffic flows with b's old view
                await b.maintain_keys()
                await asyncio.sleep(0.05)
            stop.set()
            await running
    assert len(signers) == 2 and verified > 20
    assert failures == []


async def test_retired_key_leaves_the_jwks_only_after_its_tokens_expired(settings, own_db):
    clock = FakeClock()
    async with App(settings, own_db, clock=clock) as app:
        deps = app.deps
        client = await add_client(deps.store, clock)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = pb_grpc.AuthServiceStub(ch)
            cred = pb.IssueRequest(client=pb.ClientCredential(client_id=client.id, client_secret=client.secret))
            old_kid = deps.live.keyring.signer.kid
            next_kid = next(k for k in await kids(stub) if k != old_kid)  # published before it signs
            clock.advance(deps.policy.key_publish_lead + 1)
            last_old = (await stub.Issue(cred)).tokens.access_token  # signed in the old key's last second
            await key_rotation.rotate(deps.store, deps.kek, deps.policy, clock)
            await app.maintain_keys()
            assert deps.live.keyring.signer.kid == next_kid
            assert old_kid in await kids(stub)
            assert (await stub.Verify(pb.VerifyRequest(token=last_old, audience="orders"))).active
            # Still published while a token it signed (on the slowest replica) can be valid.
            clock.advance(deps.policy.retire_after - 1)
            await app.maintain_keys()
            assert old_kid in await kids(stub)
            clock.advance(2)  # now every token old_kid signed, on any replica, has expired
            await app.maintain_keys()
            assert old_kid not in await kids(stub)


async def test_revoked_key_stops_verifying_at_once(settings, own_db):
    clock = FakeClock()
    async with App(settings, own_db, clock=clock) as app:
        deps = app.deps
        client = await add_client(deps.store, clock)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = pb_grpc.AuthServiceStub(ch)
            cred = pb.IssueRequest(client=pb.ClientCredential(client_id=client.id, client_secret=client.secret))
            token = (await stub.Issue(cred)).tokens.access_token
            # Verified once, so the server holds it as checked: revoking the key must undo that.
            assert (await stub.Verify(pb.VerifyRequest(token=token, audience="orders"))).active
            compromised = deps.live.keyring.signer.kid
            await key_rotation.revoke_key(deps.store, deps.kek, deps.policy, clock, compromised)
            await app.maintain_keys()
            resp = await stub.Verify(pb.VerifyRequest(token=token, audience="orders"))
            assert resp.reason == R.INACTIVE_REASON_UNKNOWN_KEY
            assert compromised not in await kids(stub)
            fresh = (await stub.Issue(cred)).tokens.access_token
            assert (await stub.Verify(pb.VerifyRequest(token=fresh, audience="orders"))).active
            with pytest.raises(Exception, match="no published key"):
                await key_rotation.revoke_key(deps.store, deps.kek, deps.policy, clock, compromised)


async def test_kek_rotation_reseals_every_secret(settings, own_db, passwords):
    clock = FakeClock()
    async with App(dataclasses.replace(settings, kek=KEK_A), own_db, clock=clock) as old:
        user = await add_user(old.deps.store, passwords, clock)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{old.port}") as ch:
            stub = pb_grpc.AuthServiceStub(ch)
            token = (await self_login(stub, user)).access_token
            secret = (await stub.EnrollMFA(pb.EnrollMFARequest(), metadata=bearer(token))).secret
            code = pyotp.TOTP(secret).at(clock.now())
            await stub.ConfirmMFA(pb.ConfirmMFARequest(totp_code=code), metadata=bearer(token))
        both = dataclasses.replace(settings, kek=f"{KEK_B},{KEK_A}").load_kek()
        counts = await kek_rotation.reseal_all(old.deps.store, both)
        assert counts["signing-key"] == 2 and counts["totp"] == 1
    clock.advance(30)
    # A replica that has only the new KEK: the old one is gone.
    async with (
        App(dataclasses.replace(settings, kek=KEK_B), own_db, clock=clock) as new,
        grpc.aio.insecure_channel(f"127.0.0.1:{new.port}") as ch,
    ):
        stub = pb_grpc.AuthServiceStub(ch)
        resp = await stub.Issue(
            pb.IssueRequest(password=pb.PasswordCredential(username=user.name, password=user.password))
        )
        assert resp.WhichOneof("result") == "mfa_challenge"
        done = await stub.ChallengeMFA(
            pb.ChallengeMFARequest(
                challenge_id=resp.mfa_challenge.challenge_id, totp_code=pyotp.TOTP(secret).at(clock.now())
            )
        )
        assert (await stub.Verify(pb.VerifyRequest(token=done.tokens.access_token, audience="orders"))).active
