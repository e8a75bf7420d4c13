"""Who may call the AdminService: a user with the admin scope and a recent
login, or a service client with the admin scope (over mTLS: tests/tls);
nobody else. Every call, granted or refused, is audited with its actor."""

from __future__ import annotations

import grpc

from authsvc_client import admin_pb, pb

from .admin_support import ADMIN_SCOPE, admin_client, admin_user, client_token, fails
from .helpers import add_client, add_user, bearer, login, self_login

C = grpc.StatusCode
LIST = admin_pb.ListUsersRequest()


async def test_no_token_is_unauthenticated(admin):
    assert "authorization: Bearer" in await fails(admin.ListUsers(LIST), C.UNAUTHENTICATED)
    await fails(admin.ListUsers(LIST, metadata=bearer("junk")), C.UNAUTHENTICATED, "invalid credentials")
    await fails(admin.ListUsers(LIST, metadata=(("authorization", "Basic eDp5"),)), C.UNAUTHENTICATED)


async def test_a_user_without_the_admin_scope_is_refused(admin, stub, store, passwords, clock):
    user = await add_user(store, passwords, clock, scopes=("read",), audiences=())
    token = (await self_login(stub, user)).access_token
    await fails(admin.ListUsers(LIST, metadata=bearer(token)), C.PERMISSION_DENIED, "the admin scope is required")
    row = await store._pool.fetchrow("SELECT * FROM audit_log WHERE event = 'admin_denied' ORDER BY seq DESC LIMIT 1")
    assert (row["actor"], row["outcome"], row["detail"]) == (user.id, "denied", "action=ListUsers reason=scope")


async def test_an_admin_token_for_another_audience_is_refused(admin, stub, store, passwords, clock):
    user = await add_user(store, passwords, clock, scopes=(ADMIN_SCOPE,), audiences=("orders",))
    token = (await login(stub, user, audience=["orders"])).access_token
    assert "audience authsvc alone" in await fails(admin.ListUsers(LIST, metadata=bearer(token)), C.UNAUTHENTICATED)


async def test_a_stale_login_must_log_in_again(admin, stub, store, passwords, clock):
    user = await admin_user(store, passwords, clock)
    pair = await self_login(stub, user)
    assert (await admin.ListUsers(LIST, metadata=bearer(pair.access_token))).users
    # Refreshing keeps the access token alive but not the login: after 15
    # minutes the admin must type the password again.
    for _ in range(3):
        clock.advance(280)
        pair = (await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))).tokens
    assert (await admin.ListUsers(LIST, metadata=bearer(pair.access_token))).users  # 840 s: still recent
    clock.advance(70)
    await fails(
        admin.ListUsers(LIST, metadata=bearer(pair.access_token)),
        C.FAILED_PRECONDITION,
        "recent authentication required",
    )
    fresh = await self_login(stub, user)
    assert (await admin.ListUsers(LIST, metadata=bearer(fresh.access_token))).users


async def test_a_service_client_with_the_admin_scope(admin, stub, store, clock):
    client = await admin_client(store, clock)
    token = await client_token(stub, client)
    assert (await admin.ListUsers(LIST, metadata=bearer(token))).users is not None
    row = await store._pool.fetchrow("SELECT * FROM audit_log WHERE event = 'admin_call' ORDER BY seq DESC LIMIT 1")
    assert (row["actor"], row["client_id"], row["detail"]) == (client.id, client.id, "action=ListUsers")


async def test_a_service_client_without_the_admin_scope(admin, stub, store, clock):
    client = await add_client(store, clock, scopes=("orders.read",), audiences=("authsvc",))
    token = await client_token(stub, client)
    await fails(admin.ListUsers(LIST, metadata=bearer(token)), C.PERMISSION_DENIED)


async def test_a_revoked_admin_token_is_refused(admin, stub, store, passwords, clock):
    user = await admin_user(store, passwords, clock)
    token = (await self_login(stub, user)).access_token
    await stub.Revoke(pb.RevokeRequest(token=token))
    await fails(admin.ListUsers(LIST, metadata=bearer(token)), C.UNAUTHENTICATED)


async def test_a_request_that_does_not_parse(channel, as_admin):
    call = channel.unary_unary(
        "/authsvc.admin.v1.AdminService/GetUser", request_serializer=None, response_deserializer=None
    )
    await fails(call(b"\xff\xff\xff", metadata=as_admin), C.INVALID_ARGUMENT, "malformed request")


async def test_authservice_admin_paths_follow_the_same_rule(admin, stub, store, passwords, clock):
    """Revoke and ListSessions of someone else's, on AuthService, are admin
    calls too: the same rule (domain/admin/authz.py), the same audit."""
    operator = await admin_user(store, passwords, clock)
    other = await add_user(store, passwords, clock)
    pair = await self_login(stub, operator)
    listing = pb.ListSessionsRequest(subject=other.id)
    assert (await stub.ListSessions(listing, metadata=bearer(pair.access_token))).sessions is not None
    for _ in range(4):  # 1120 s after the login: the token is fresh, the login is not
        clock.advance(280)
        pair = (await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))).tokens
    metadata = bearer(pair.access_token)
    await fails(stub.ListSessions(listing, metadata=metadata), C.FAILED_PRECONDITION, "recent authentication required")
    await fails(stub.Revoke(pb.RevokeRequest(subject=other.id), metadata=metadata), C.FAILED_PRECONDITION)
    assert (await stub.ListSessions(pb.ListSessionsRequest(), metadata=metadata)).sessions  # its own: no admin rule
    row = await store._pool.fetchrow("SELECT * FROM audit_log WHERE event = 'admin_denied' ORDER BY seq DESC LIMIT 1")
    denied = (row["actor"], row["subject"], row["detail"])
    assert denied == (operator.id, other.id, "action=Revoke reason=login too old")
