"""AdminService, signing keys (list, rotate, revoke) and the audit trail
(paged, newest first). Keys run on a database of their own: rotating and
revoking there must not pull the keys from under the other tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from authsvc.server import App
from authsvc_client import admin_grpc, admin_pb, pb
from authsvc_client import grpc as pb_grpc

from ..support import FakeClock, create_database, drop_database
from .admin_support import admin_metadata, admin_user, fails
from .helpers import add_user, bearer

C = grpc.StatusCode


if TYPE_CHECKING:  # the async stub types exist only in the generated stubs' .pyi
    Own = tuple[App, pb_grpc.AuthServiceAsyncStub, admin_grpc.AdminServiceAsyncStub]


@pytest.fixture(scope="module")
async def own(admin_url, settings) -> AsyncIterator[Own]:
    url = await create_database(admin_url, "authsvc_admin_keys")
    try:
        async with (
            App(settings, url, clock=FakeClock()) as app,
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch,
        ):
            yield app, pb_grpc.AuthServiceStub(ch), admin_grpc.AdminServiceStub(ch)
    finally:
        await drop_database(admin_url, url)


async def test_list_rotate_and_revoke_keys(own, passwords):
    app, stub, admin = own
    assert app.deps is not None
    store, clock = app.deps.store, app.clock
    user = await admin_user(store, passwords, clock)
    metadata = await admin_metadata(stub, user)
    before = {k.state: k for k in (await admin.ListKeys(admin_pb.ListKeysRequest(), metadata=metadata)).keys}
    assert set(before) == {"active", "next"}
    # The next key was published just now: verifiers may not have it yet.
    await fails(admin.RotateKey(admin_pb.RotateKeyRequest(), metadata=metadata), C.FAILED_PRECONDITION)
    old_token = (await stub.Issue(pb.IssueRequest(
        password=pb.PasswordCredential(username=user.name, password=user.password), audience=["authsvc"]
    ))).tokens.access_token  # fmt: skip
    done = await admin.RotateKey(admin_pb.RotateKeyRequest(force=True), metadata=metadata)
    assert (done.retired_kid, done.activated_kid) == (before["active"].kid, before["next"].kid)
    after = {k.kid: k.state for k in (await admin.ListKeys(admin_pb.ListKeysRequest(), metadata=metadata)).keys}
    assert after[done.retired_kid] == "retired" and after[done.activated_kid] == "active"
    assert list(after.values()).count("next") == 1
    # Tokens of the retired key still verify; once it is revoked they do not, anywhere.
    assert (await stub.Verify(pb.VerifyRequest(token=old_token, audience="authsvc"))).active
    fresh = await admin_metadata(stub, user)  # signed by the new key
    await admin.RevokeKey(admin_pb.RevokeKeyRequest(kid=done.retired_kid), metadata=fresh)
    answer = await stub.Verify(pb.VerifyRequest(token=old_token, audience="authsvc"))
    assert not answer.active
    jwks = json.loads((await stub.GetJWKS(pb.GetJWKSRequest())).jwks_json)
    assert done.retired_kid not in {k["kid"] for k in jwks["keys"]}
    revoked = {k.kid: k.state for k in (await admin.ListKeys(admin_pb.ListKeysRequest(), metadata=fresh)).keys}
    assert revoked[done.retired_kid] == "revoked"
    await fails(admin.RevokeKey(admin_pb.RevokeKeyRequest(kid=done.retired_kid), metadata=fresh), C.NOT_FOUND)
    await fails(admin.RevokeKey(admin_pb.RevokeKeyRequest(kid="nope"), metadata=fresh), C.NOT_FOUND)
    await fails(admin.RevokeKey(admin_pb.RevokeKeyRequest(), metadata=fresh), C.INVALID_ARGUMENT)
    events = await admin.QueryAudit(admin_pb.QueryAuditRequest(event="key_revoked"), metadata=fresh)
    assert [e.detail for e in events.events] == [f"kid={done.retired_kid}"]


async def test_audit_query_pages_newest_first_with_filters(admin, stub, store, passwords, clock, as_admin):
    user = await add_user(store, passwords, clock)
    started = clock.now()
    for _ in range(3):
        await admin.DisableUser(admin_pb.DisableUserRequest(id=user.id), metadata=as_admin)
        clock.advance(1)
    seen: list[admin_pb.AuditEvent] = []
    token = ""
    while True:
        page = await admin.QueryAudit(
            admin_pb.QueryAuditRequest(subject=user.id, event="user_disabled", page_size=1, page_token=token),
            metadata=as_admin,
        )
        assert len(page.events) <= 1
        seen += page.events
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 3
    assert [e.seq for e in seen] == sorted((e.seq for e in seen), reverse=True)
    assert all(e.subject == user.id and e.outcome == "ok" and e.actor and e.request_id is not None for e in seen)
    # A time window: the middle one only.
    since, until = Timestamp(), Timestamp()
    since.FromNanoseconds(int((started + 0.5) * 1e9))
    until.FromNanoseconds(int((started + 1.5) * 1e9))
    window = await admin.QueryAudit(
        admin_pb.QueryAuditRequest(subject=user.id, event="user_disabled", since=since, until=until), metadata=as_admin
    )
    assert [e.seq for e in window.events] == [seen[1].seq]
    by_actor = await admin.QueryAudit(
        admin_pb.QueryAuditRequest(subject=user.id, actor=seen[0].actor), metadata=as_admin
    )
    assert {e.event for e in by_actor.events} == {"admin_call", "user_disabled"}


async def test_audit_query_refuses_bad_input(admin, as_admin):
    later, earlier = Timestamp(seconds=2_000_000_000), Timestamp(seconds=1_000_000_000)
    for bad in (
        admin_pb.QueryAuditRequest(page_size=-1),
        admin_pb.QueryAuditRequest(page_size=100_000),
        admin_pb.QueryAuditRequest(page_token="not-a-token"),
        admin_pb.QueryAuditRequest(since=later, until=earlier),
        admin_pb.QueryAuditRequest(subject="s" * 300),
    ):
        await fails(admin.QueryAudit(bad, metadata=as_admin), C.INVALID_ARGUMENT)


async def test_audit_query_needs_the_admin_scope(admin, stub, store, passwords, clock):
    user = await add_user(store, passwords, clock, scopes=("read",), audiences=())
    token = (await stub.Issue(pb.IssueRequest(
        password=pb.PasswordCredential(username=user.name, password=user.password), audience=["authsvc"]
    ))).tokens.access_token  # fmt: skip
    await fails(admin.QueryAudit(admin_pb.QueryAuditRequest(), metadata=bearer(token)), C.PERMISSION_DENIED)
