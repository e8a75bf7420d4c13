"""The recommended admin set-up: a service client that authenticates with its
certificate (RFC 8705) and holds the admin scope. Its token is bound to the
certificate, so the same token without the key is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from authsvc.domain.identity import credentials
from authsvc.server import App
from authsvc_client import admin_grpc, admin_pb, pb
from authsvc_client import grpc as pb_grpc

from ..conftest import unique
from ..integration.admin_support import ADMIN_SCOPE, fails
from ..integration.helpers import bearer
from ..tlsutil import TestCA
from .test_mtls import SPIFFE, Pki, channel, tls_app


@pytest.fixture(scope="module")
def admin_pki() -> Pki:
    ca = TestCA()
    return Pki(
        ca=ca,
        server=ca.issue("authsvc", server=True),
        billing=ca.issue("ops", uri=SPIFFE + "ops"),
        mallory=ca.issue("mallory", uri=SPIFFE + "mallory"),
        alice=ca.issue("alice-laptop"),
    )


@pytest.fixture(scope="module")
async def admin_mtls(settings, database_url, admin_pki, tmp_path_factory) -> AsyncIterator[App]:
    async with tls_app(settings, database_url, admin_pki, tmp_path_factory.mktemp("admin-mtls"), True) as app:
        yield app


async def test_a_certificate_client_with_the_admin_scope_administers(admin_mtls, admin_pki, store, clock):
    client_id = credentials.new_client_id()
    await store.create_client(
        client_id, unique("ops"), b"", [ADMIN_SCOPE], ["authsvc"], clock.now(), tls_san_uri=SPIFFE + "ops"
    )
    async with channel(admin_mtls, admin_pki, admin_pki.billing) as ch:
        issued = await pb_grpc.AuthServiceStub(ch).Issue(
            pb.IssueRequest(client=pb.ClientCredential(client_id=client_id), audience=["authsvc"])
        )
        token = issued.tokens.access_token
        admin = admin_grpc.AdminServiceStub(ch)
        created = await admin.CreateUser(
            admin_pb.CreateUserRequest(username=unique("by-mtls"), password="a long enough password"),
            metadata=bearer(token),
        )
        assert created.id
        keys = await admin.ListKeys(admin_pb.ListKeysRequest(), metadata=bearer(token))
        assert {k.state for k in keys.keys} >= {"active", "next"}
    # The token is bound to the ops certificate: presented over another
    # connection (another certificate), it is worth nothing.
    async with channel(admin_mtls, admin_pki, admin_pki.mallory) as ch:
        admin = admin_grpc.AdminServiceStub(ch)
        listing = admin.ListKeys(admin_pb.ListKeysRequest(), metadata=bearer(token))
        await fails(listing, grpc.StatusCode.UNAUTHENTICATED)
    row = await store._pool.fetchrow(
        "SELECT actor FROM audit_log WHERE event = 'user_created' AND subject = $1", created.id
    )
    assert row["actor"] == client_id
