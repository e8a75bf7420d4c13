"""AdminService, users: create, get, list (paged), disable and enable, delete,
set password, reset MFA; a disabled user can neither log in nor refresh."""

from __future__ import annotations

import grpc

from authsvc_client import admin_pb, pb

from ..conftest import unique
from .admin_support import fails
from .helpers import PASSWORD, UserCreds, add_user, login, self_login
from .test_mfa import enrol

C = grpc.StatusCode
NEW_PASSWORD = "a different long passphrase"


async def verify(stub, token: str, audience: str = "orders") -> pb.VerifyResponse:
    return await stub.Verify(pb.VerifyRequest(token=token, audience=audience))


async def test_create_get_and_log_in(admin, stub, as_admin):
    name = unique("made")
    created = await admin.CreateUser(
        admin_pb.CreateUserRequest(username=name, password=PASSWORD, scope=["read"], audience=["orders"]),
        metadata=as_admin,
    )
    assert (created.username, list(created.scope), list(created.audience)) == (name, ["read"], ["orders"])
    assert not created.disabled and not created.mfa_enrolled and created.created_at.seconds > 0
    by_id = await admin.GetUser(admin_pb.GetUserRequest(id=created.id), metadata=as_admin)
    by_name = await admin.GetUser(admin_pb.GetUserRequest(username=name), metadata=as_admin)
    assert by_id == by_name == created
    pair = await login(stub, UserCreds(name, PASSWORD, created.id), audience=["orders"])
    assert (await verify(stub, pair.access_token)).claims.sub == created.id


async def test_create_refuses_bad_input_and_taken_names(admin, as_admin):
    name = unique("dup")
    ok = admin_pb.CreateUserRequest(username=name, password=PASSWORD)
    await admin.CreateUser(ok, metadata=as_admin)
    await fails(admin.CreateUser(ok, metadata=as_admin), C.ALREADY_EXISTS)
    for bad in (
        admin_pb.CreateUserRequest(password=PASSWORD),
        admin_pb.CreateUserRequest(username=unique("u"), password="short"),
        admin_pb.CreateUserRequest(username=unique("u")),
        admin_pb.CreateUserRequest(username=" padded ", password=PASSWORD),
        admin_pb.CreateUserRequest(username="x" * 300, password=PASSWORD),
        admin_pb.CreateUserRequest(username=unique("u"), password=PASSWORD, scope=["two words"]),
    ):
        await fails(admin.CreateUser(bad, metadata=as_admin), C.INVALID_ARGUMENT)


async def test_get_unknown_or_malformed(admin, as_admin):
    await fails(admin.GetUser(admin_pb.GetUserRequest(), metadata=as_admin), C.INVALID_ARGUMENT)
    await fails(admin.GetUser(admin_pb.GetUserRequest(id="not-a-uuid"), metadata=as_admin), C.INVALID_ARGUMENT)
    unknown = "00000000-0000-4000-8000-000000000000"
    await fails(admin.GetUser(admin_pb.GetUserRequest(id=unknown), metadata=as_admin), C.NOT_FOUND, "no such user")
    await fails(admin.GetUser(admin_pb.GetUserRequest(username=unique("nobody")), metadata=as_admin), C.NOT_FOUND)
    for make, rpc in (
        (admin_pb.DisableUserRequest, admin.DisableUser),
        (admin_pb.EnableUserRequest, admin.EnableUser),
        (admin_pb.DeleteUserRequest, admin.DeleteUser),
        (admin_pb.ResetMFARequest, admin.ResetMFA),
    ):
        await fails(rpc(make(id=unknown), metadata=as_admin), C.NOT_FOUND)
        await fails(rpc(make(id="nope"), metadata=as_admin), C.INVALID_ARGUMENT)
    request = admin_pb.SetPasswordRequest(id=unknown, password=NEW_PASSWORD)
    await fails(admin.SetPassword(request, metadata=as_admin), C.NOT_FOUND)


async def test_list_pages_through_every_user_once_in_order(admin, store, passwords, clock, as_admin):
    mine = {(await add_user(store, passwords, clock)).name for _ in range(5)}
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await admin.ListUsers(admin_pb.ListUsersRequest(page_size=2, page_token=token), metadata=as_admin)
        assert len(page.users) <= 2
        seen += [u.username for u in page.users]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert mine <= set(seen)
    assert pages >= 3
    everyone = await admin.ListUsers(admin_pb.ListUsersRequest(page_size=500), metadata=as_admin)
    assert [u.username for u in everyone.users] == seen


async def test_list_refuses_bad_paging(admin, as_admin):
    for bad in (
        admin_pb.ListUsersRequest(page_size=-1),
        admin_pb.ListUsersRequest(page_size=501),
        admin_pb.ListUsersRequest(page_token="not a token"),
        admin_pb.ListUsersRequest(page_token="cDI6eA"),  # well-formed base64, unknown version
        admin_pb.ListUsersRequest(page_token="x" * 5000),
    ):
        await fails(admin.ListUsers(bad, metadata=as_admin), C.INVALID_ARGUMENT)


async def test_disable_revokes_every_session_and_refuses_login_and_refresh(
    admin, stub, store, passwords, clock, as_admin
):
    user = await add_user(store, passwords, clock)
    first, second = await login(stub, user), await login(stub, user)
    assert (await verify(stub, first.access_token)).active
    done = await admin.DisableUser(admin_pb.DisableUserRequest(id=user.id), metadata=as_admin)
    assert done.sessions_revoked == 2
    for pair in (first, second):
        answer = await verify(stub, pair.access_token)
        assert (answer.active, answer.reason) == (False, pb.INACTIVE_REASON_REVOKED)
        await fails(stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token)), C.UNAUTHENTICATED)
    await fails(login(stub, user), C.UNAUTHENTICATED, "invalid credentials")
    got = await admin.GetUser(admin_pb.GetUserRequest(id=user.id), metadata=as_admin)
    assert got.disabled
    assert "user_disabled" in await store.audit_events(user.id)

    enabled = await admin.EnableUser(admin_pb.EnableUserRequest(id=user.id), metadata=as_admin)
    assert enabled.sessions_revoked == 0
    fresh = await login(stub, user)  # in again; the old sessions stay revoked
    assert (await verify(stub, fresh.access_token)).active
    await fails(stub.Refresh(pb.RefreshRequest(refresh_token=second.refresh_token)), C.UNAUTHENTICATED)


async def test_refresh_checks_the_disabled_flag_itself(stub, store, passwords, clock):
    """The domain's own rule, not only the revocation that comes with a disable:
    a session left live by any other way of disabling is refused too."""
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    await store._pool.execute("UPDATE users SET disabled = true WHERE id = $1::uuid", user.id)
    await fails(stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token)), C.UNAUTHENTICATED)
    await store._pool.execute("UPDATE users SET disabled = false WHERE id = $1::uuid", user.id)
    clock.advance(3)
    assert (await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))).tokens.access_token


async def test_disabled_user_cannot_finish_an_mfa_login(admin, stub, store, passwords, clock, as_admin):
    import pyotp

    user = await add_user(store, passwords, clock)
    secret, _ = await enrol(stub, user, clock)
    credential = pb.PasswordCredential(username=user.name, password=user.password)
    challenge = (await stub.Issue(pb.IssueRequest(password=credential, audience=["authsvc"]))).mfa_challenge
    await admin.DisableUser(admin_pb.DisableUserRequest(id=user.id), metadata=as_admin)
    code = pyotp.TOTP(secret).at(clock.now())
    request = pb.ChallengeMFARequest(challenge_id=challenge.challenge_id, totp_code=code)
    await fails(stub.ChallengeMFA(request), C.UNAUTHENTICATED)


async def test_delete_ends_everything(admin, stub, store, passwords, clock, as_admin):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    done = await admin.DeleteUser(admin_pb.DeleteUserRequest(id=user.id), metadata=as_admin)
    assert done.sessions_revoked == 1
    assert not (await verify(stub, pair.access_token)).active
    await fails(admin.GetUser(admin_pb.GetUserRequest(id=user.id), metadata=as_admin), C.NOT_FOUND)
    await fails(login(stub, user), C.UNAUTHENTICATED)
    await fails(admin.DeleteUser(admin_pb.DeleteUserRequest(id=user.id), metadata=as_admin), C.NOT_FOUND)


async def test_set_password_revokes_sessions(admin, stub, store, passwords, clock, as_admin):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    request = admin_pb.SetPasswordRequest(id=user.id, password=NEW_PASSWORD)
    assert (await admin.SetPassword(request, metadata=as_admin)).sessions_revoked == 1
    assert not (await verify(stub, pair.access_token)).active
    await fails(login(stub, user), C.UNAUTHENTICATED)
    assert (await login(stub, UserCreds(user.name, NEW_PASSWORD, user.id))).access_token
    for weak in ("short", ""):
        bad = admin_pb.SetPasswordRequest(id=user.id, password=weak)
        await fails(admin.SetPassword(bad, metadata=as_admin), C.INVALID_ARGUMENT)


async def test_reset_mfa(admin, stub, store, passwords, clock, as_admin):
    user = await add_user(store, passwords, clock)
    await enrol(stub, user, clock)
    assert (await admin.GetUser(admin_pb.GetUserRequest(id=user.id), metadata=as_admin)).mfa_enrolled
    await admin.ResetMFA(admin_pb.ResetMFARequest(id=user.id), metadata=as_admin)
    assert not (await admin.GetUser(admin_pb.GetUserRequest(id=user.id), metadata=as_admin)).mfa_enrolled
    assert (await self_login(stub, user)).access_token  # tokens at once: no challenge any more


async def test_every_change_is_audited_with_its_actor(admin, stub, store, passwords, clock):
    from .admin_support import admin_metadata, admin_user

    operator = await admin_user(store, passwords, clock)
    metadata = await admin_metadata(stub, operator)
    user = await add_user(store, passwords, clock)
    await admin.DisableUser(admin_pb.DisableUserRequest(id=user.id), metadata=metadata)
    rows = await store._pool.fetch(
        "SELECT event, outcome, actor, detail FROM audit_log WHERE subject = $1 ORDER BY seq", user.id
    )
    assert [(r["event"], r["outcome"], r["actor"], r["detail"]) for r in rows] == [
        ("admin_call", "ok", operator.id, "action=DisableUser"),
        ("user_disabled", "ok", operator.id, "sessions=0"),
    ]
