"""Revoke a token, a session or a subject; Verify honours it at once."""

from __future__ import annotations

import grpc
import pytest

from authsvc_client import pb

from .helpers import add_client, add_user, bearer, login, self_login

R = pb.InactiveReason


async def active(stub, token: str, audience: str = "orders") -> int:
    return (await stub.Verify(pb.VerifyRequest(token=token, audience=audience))).reason


async def test_revoke_access_token(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    other = await login(stub, user)
    assert (await stub.Revoke(pb.RevokeRequest(token=pair.access_token))).revoked == 1
    assert await active(stub, pair.access_token) == R.INACTIVE_REASON_REVOKED
    assert await active(stub, other.access_token) == R.INACTIVE_REASON_UNSPECIFIED


async def test_revoke_refresh_token_ends_its_session(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    assert (await stub.Revoke(pb.RevokeRequest(token=pair.refresh_token))).revoked == 1
    assert await active(stub, pair.access_token) == R.INACTIVE_REASON_REVOKED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Revoking again, or revoking garbage, is not an error (RFC 7009 section 2.2).
    assert (await stub.Revoke(pb.RevokeRequest(token=pair.refresh_token))).revoked == 0
    assert (await stub.Revoke(pb.RevokeRequest(token="garbage"))).revoked == 0


async def test_revoke_own_session_and_not_someone_elses(stub, store, passwords, clock):
    alice = await add_user(store, passwords, clock)
    bob = await add_user(store, passwords, clock)
    a1, a2 = await login(stub, alice), await self_login(stub, alice)
    b1 = await self_login(stub, bob)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Revoke(pb.RevokeRequest(session_id=a1.session_id), metadata=bearer(b1.access_token))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Revoke(pb.RevokeRequest(session_id=a1.session_id))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    resp = await stub.Revoke(pb.RevokeRequest(session_id=a1.session_id), metadata=bearer(a2.access_token))
    assert resp.revoked == 1
    assert await active(stub, a1.access_token) == R.INACTIVE_REASON_REVOKED
    assert await active(stub, a2.access_token, "authsvc") == R.INACTIVE_REASON_UNSPECIFIED


async def test_revoke_subject_logs_out_everywhere(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    own = await self_login(stub, user)
    pairs = [await login(stub, user) for _ in range(2)]
    resp = await stub.Revoke(pb.RevokeRequest(subject=user.id), metadata=bearer(own.access_token))
    assert resp.revoked == 3
    assert await active(stub, own.access_token, "authsvc") == R.INACTIVE_REASON_REVOKED
    for pair in pairs:
        assert await active(stub, pair.access_token) == R.INACTIVE_REASON_REVOKED
    # Logging in again afterwards works (a new session is not caught by the cut).
    clock.advance(1)
    assert await active(stub, (await login(stub, user)).access_token) == R.INACTIVE_REASON_UNSPECIFIED


async def test_admin_may_revoke_any_subject(stub, store, passwords, clock):
    admin = await add_user(store, passwords, clock, scopes=("authsvc:admin",))
    user = await add_user(store, passwords, clock)
    victim = await self_login(stub, user)
    admin_token = (await self_login(stub, admin)).access_token
    resp = await stub.Revoke(pb.RevokeRequest(subject=user.id), metadata=bearer(admin_token))
    assert resp.revoked == 1
    assert await active(stub, victim.access_token, "authsvc") == R.INACTIVE_REASON_REVOKED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Revoke(pb.RevokeRequest(subject=admin.id), metadata=bearer(victim.access_token))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED  # the victim's token is dead


async def test_revoke_service_client_subject_cuts_its_tokens(stub, store, passwords, clock):
    admin = await add_user(store, passwords, clock, scopes=("authsvc:admin",))
    client = await add_client(store, clock)
    cred = pb.ClientCredential(client_id=client.id, client_secret=client.secret)
    token = (await stub.Issue(pb.IssueRequest(client=cred))).tokens.access_token
    admin_token = (await self_login(stub, admin)).access_token
    await stub.Revoke(pb.RevokeRequest(subject=client.id), metadata=bearer(admin_token))
    assert await active(stub, token) == R.INACTIVE_REASON_REVOKED
    clock.advance(1)
    fresh = (await stub.Issue(pb.IssueRequest(client=cred))).tokens.access_token
    assert await active(stub, fresh) == R.INACTIVE_REASON_UNSPECIFIED
