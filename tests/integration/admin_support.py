"""Admin callers for the AdminService tests: an admin user with a fresh
login, a service client holding the admin scope, and a way to expect errors."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

from authsvc.store.postgres import PostgresStore
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from .helpers import ClientCreds, UserCreds, add_client, add_user, bearer, self_login

ADMIN_SCOPE = "authsvc:admin"


async def admin_user(store: PostgresStore, passwords: Any, clock: Any) -> UserCreds:
    return await add_user(store, passwords, clock, scopes=(ADMIN_SCOPE,), audiences=())


async def admin_metadata(stub: pb_grpc.AuthServiceAsyncStub, user: UserCreds) -> tuple[tuple[str, str], ...]:
    """A fresh login's token for authsvc, with the admin scope, as call metadata."""
    return bearer((await self_login(stub, user)).access_token)


async def admin_client(store: PostgresStore, clock: Any) -> ClientCreds:
    return await add_client(store, clock, scopes=(ADMIN_SCOPE,), audiences=("authsvc",))


async def client_token(stub: pb_grpc.AuthServiceAsyncStub, client: ClientCreds, audience: str = "authsvc") -> str:
    credential = pb.ClientCredential(client_id=client.id, client_secret=client.secret)
    issued = await stub.Issue(pb.IssueRequest(client=credential, audience=[audience]))
    token: str = issued.tokens.access_token
    return token


async def fails(call: Awaitable[Any], code: grpc.StatusCode, details: str | None = None) -> str:
    """The call fails with ``code`` (and ``details``, if given); gives the details."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, (err.value.code(), err.value.details())
    if details is not None:
        assert err.value.details() == details
    return err.value.details() or ""
