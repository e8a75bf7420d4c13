"""Creating principals and logging in, for the integration tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from authsvc.domain.identity import credentials
from authsvc.domain.identity.passwords import Passwords
from authsvc.store.postgres import PostgresStore
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..conftest import unique
from ..support import FakeClock

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class UserCreds:
    name: str
    password: str
    id: str


@dataclass(frozen=True)
class ClientCreds:
    id: str
    secret: str


async def add_user(
    store: PostgresStore,
    passwords: Passwords,
    clock: FakeClock,
    scopes: Sequence[str] = ("read", "write"),
    audiences: Sequence[str] = ("orders",),
) -> UserCreds:
    name = unique("user")
    user_id = await store.create_user(name, await passwords.hash_async(PASSWORD), scopes, audiences, clock.now())
    return UserCreds(name, PASSWORD, user_id)


async def add_client(
    store: PostgresStore,
    clock: FakeClock,
    scopes: Sequence[str] = ("orders.read",),
    audiences: Sequence[str] = ("orders", "billing"),
) -> ClientCreds:
    client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
    await store.create_client(client_id, unique("svc"), credentials.digest(secret), scopes, audiences, clock.now())
    return ClientCreds(client_id, secret)


async def login(
    stub: pb_grpc.AuthServiceAsyncStub, user: UserCreds, audience: Sequence[str] = (), scope: Sequence[str] = ()
) -> pb.TokenPair:
    response = await stub.Issue(
        pb.IssueRequest(
            password=pb.PasswordCredential(username=user.name, password=user.password),
            audience=list(audience),
            scope=list(scope),
        )
    )
    assert response.WhichOneof("result") == "tokens"
    tokens: pb.TokenPair = response.tokens
    return tokens


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def self_login(stub: pb_grpc.AuthServiceAsyncStub, user: UserCreds, scope: Sequence[str] = ()) -> pb.TokenPair:
    """A token for authsvc itself (and nothing else): what its self-service
    calls (EnrollMFA, ConfirmMFA, Revoke of a session or subject, ListSessions) take."""
    return await login(stub, user, audience=["authsvc"], scope=scope)
