"""Every forgery in the table, refused with its reason: by the Verify RPC and
by the shared rules a service runs locally (authsvc_client)."""

from __future__ import annotations

import grpc
import pytest

from authsvc_client import KeySet, Requirements, TokenRejected, pb, verify_access_token

from .table import CASES, OVERSIZE, Case, Material


def test_the_table_is_large_and_names_are_unique():
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


def test_the_material_is_genuine(material: Material, clock):
    claims = verify_access_token(
        material.token,
        keys=KeySet.from_jwks(material.jwks),
        issuer="authsvc-test",
        requirements=Requirements(audience="orders", scopes=("read",)),
        now=clock.now(),
    )
    assert claims.scope == ("read",) and claims.sid


@pytest.mark.parametrize("case", [*CASES, OVERSIZE], ids=lambda c: c.name)
def test_local_verifier_refuses(case: Case, material: Material, clock):
    token = case.forge(material)
    with pytest.raises(TokenRejected) as rejected:
        verify_access_token(
            token,
            keys=KeySet.from_jwks(material.jwks),
            issuer="authsvc-test",
            requirements=Requirements(audience=case.audience, scopes=case.scopes),
            now=clock.now() + case.later,
        )
    assert rejected.value.reason is case.reason


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_verify_rpc_refuses(case: Case, material: Material, stub, clock):
    token = case.forge(material)
    clock.advance(case.later)
    try:
        resp = await stub.Verify(pb.VerifyRequest(token=token, audience=case.audience, required_scope=case.scopes))
    finally:
        clock.advance(-case.later)
    assert not resp.active
    assert pb.InactiveReason.Name(resp.reason) == f"INACTIVE_REASON_{case.reason.name}"


async def test_verify_rpc_refuses_oversize_before_parsing(material: Material, stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Verify(pb.VerifyRequest(token=OVERSIZE.forge(material), audience="orders"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_token_verifier_refuses_every_forgery(material: Material, app, clock):
    """The local TokenVerifier (with its cache warm on the genuine token) under
    the same table: a cache never turns a forgery into a hit."""
    from authsvc_client import AsyncAuthClient, TokenVerifier

    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        verifier = TokenVerifier(AsyncAuthClient(channel), issuer="authsvc-test", clock=clock.now)
        await verifier.start()
        try:
            await verifier.verify(material.token, Requirements(audience="orders"))  # warm the cache
            for case in [*CASES, OVERSIZE]:
                token = case.forge(material)
                clock.advance(case.later)
                try:
                    with pytest.raises(TokenRejected) as rejected:
                        await verifier.verify(token, Requirements(audience=case.audience, scopes=case.scopes))
                finally:
                    clock.advance(-case.later)
                assert rejected.value.reason is case.reason, case.name
        finally:
            await verifier.close()
