from __future__ import annotations

from authsvc_client import pb

from .helpers import add_user, login


async def test_issue_verify(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    assert pair.refresh_token
    resp = await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders"))
    assert resp.active, resp
    assert resp.claims.sub == user.id
