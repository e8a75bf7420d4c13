"""AdminService, sessions: any subject's listed and revoked (by session or
all of a subject's), with the same use cases as the self-service calls."""

from __future__ import annotations

import grpc

from authsvc_client import admin_pb, pb

from .admin_support import fails
from .helpers import add_user, login

C = grpc.StatusCode


async def test_list_and_revoke_one_then_all(admin, stub, store, passwords, clock, as_admin):
    user = await add_user(store, passwords, clock)
    pairs = []
    for _ in range(3):
        pairs.append(await login(stub, user))
        clock.advance(1)  # listed oldest first
    first, second, third = pairs
    listed = await admin.ListSessions(admin_pb.ListSessionsRequest(subject=user.id), metadata=as_admin)
    assert [s.session_id for s in listed.sessions] == [first.session_id, second.session_id, third.session_id]
    assert all(s.subject == user.id and list(s.amr) == ["pwd"] for s in listed.sessions)

    one = admin_pb.RevokeSessionsRequest(session_id=first.session_id)
    assert (await admin.RevokeSessions(one, metadata=as_admin)).revoked == 1
    assert (await admin.RevokeSessions(one, metadata=as_admin)).revoked == 0  # already
    assert not (await stub.Verify(pb.VerifyRequest(token=first.access_token, audience="orders"))).active
    live = await admin.ListSessions(admin_pb.ListSessionsRequest(subject=user.id), metadata=as_admin)
    assert [s.session_id for s in live.sessions] == [second.session_id, third.session_id]
    every = await admin.ListSessions(
        admin_pb.ListSessionsRequest(subject=user.id, include_revoked=True), metadata=as_admin
    )
    assert [s.HasField("revoked_at") for s in every.sessions] == [True, False, False]

    everything = admin_pb.RevokeSessionsRequest(subject=user.id)
    assert (await admin.RevokeSessions(everything, metadata=as_admin)).revoked == 2
    for pair in (second, third):
        await fails(stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token)), C.UNAUTHENTICATED)
    assert not (await admin.ListSessions(admin_pb.ListSessionsRequest(subject=user.id), metadata=as_admin)).sessions
    rows = await store._pool.fetch(
        "SELECT event, actor, detail FROM audit_log WHERE subject = $1 AND event LIKE 'revoke%' ORDER BY seq", user.id
    )
    assert [r["event"] for r in rows] == ["revoke_session", "revoke_subject"]
    assert all(r["detail"] == "as admin" and r["actor"] != user.id for r in rows)


async def test_bad_input(admin, as_admin):
    for bad in (
        admin_pb.RevokeSessionsRequest(),
        admin_pb.RevokeSessionsRequest(session_id="not-a-uuid"),
        admin_pb.RevokeSessionsRequest(subject="x" * 300),
    ):
        await fails(admin.RevokeSessions(bad, metadata=as_admin), C.INVALID_ARGUMENT)
    await fails(admin.ListSessions(admin_pb.ListSessionsRequest(), metadata=as_admin), C.INVALID_ARGUMENT)
    unknown = admin_pb.RevokeSessionsRequest(session_id="00000000-0000-4000-8000-000000000000")
    assert (await admin.RevokeSessions(unknown, metadata=as_admin)).revoked == 0
