"""End to end: the downstream example (examples/downstream/service.py), two
processes of it chained, against a real ``authsvc serve`` process."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc_client import AsyncAuthClient, PasswordCredential, TokenPair

from ..support import create_database, drop_database
from .procs import BIN, cli, running

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "downstream" / "service.py"
KEK = "example:" + "C" * 43  # 32 fixed bytes: tests only
PASSWORD = "correct horse battery staple"
LOCAL = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)


@dataclass
class Deployment:
    authsvc: str
    orders: str
    inventory: str
    orders_client_id: str
    alice: str  # subject ids
    bob: str


_cli = cli


@pytest.fixture(scope="module")
async def example_database(admin_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_url, prefix="authsvc_example")
    yield url
    await drop_database(admin_url, url)


@pytest.fixture(scope="module")
def deployment(example_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("example")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env.update(
        AUTHSVC_DATABASE_URL=example_database,
        AUTHSVC_DATA_DIR=str(tmp / "data"),
        AUTHSVC_KEK=KEK,
        AUTHSVC_LISTEN="127.0.0.1:0",
        AUTHSVC_SHUTDOWN_GRACE="1",
    )
    subjects = {}
    for name, scope in (("alice", "orders.read"), ("bob", "read")):
        out = _cli(env, "user", "add", name, "--scope", scope, "--audience", "orders", "--password-stdin",
                   stdin=PASSWORD + "\n")  # fmt: skip
        subjects[name] = re.search(r"subject (\S+)", out).group(1)  # type: ignore[union-attr]
    printed = _cli(env, "client", "add", "orders", "--scope", "inventory.read", "--audience", "inventory")
    client = re.search(r"client_id:\s+(\S+)\nclient_secret:\s+(\S+)", printed)
    assert client, "unexpected `client add` output"

    python = sys.executable
    with running([str(BIN / "authsvc"), "serve"], env, tmp / "authsvc.log") as (_, authsvc):
        example_env = {k: v for k, v in env.items() if not k.startswith("AUTHSVC_")}
        inventory_argv = [python, str(EXAMPLE), "--authsvc", authsvc, "--audience", "inventory",
                          "--scope", "inventory.read"]  # fmt: skip
        with running(inventory_argv, example_env, tmp / "inventory.log") as (inv_proc, inventory):
            orders_env = {**example_env, "CLIENT_ID": client.group(1), "CLIENT_SECRET": client.group(2)}
            orders_argv = [python, str(EXAMPLE), "--authsvc", authsvc, "--audience", "orders", "--scope",
                           "orders.read", "--upstream", inventory, "--upstream-audience", "inventory"]  # fmt: skip
            with running(orders_argv, orders_env, tmp / "orders.log") as (ord_proc, orders):
                yield Deployment(authsvc, orders, inventory, client.group(1), subjects["alice"], subjects["bob"])
                for proc in (ord_proc, inv_proc):  # a clean exit on SIGTERM
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(15) == 0


async def login(deployment: Deployment, name: str) -> TokenPair:
    async with AsyncAuthClient(grpc.aio.insecure_channel(deployment.authsvc)) as client:
        pair = await client.issue(PasswordCredential(name, PASSWORD), audience=["orders"])
    assert isinstance(pair, TokenPair)
    return pair


async def check(address: str, token: str | None = None, method: str = "Check"):
    """(status code, details or health status, trailing metadata)."""
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    async with grpc.aio.secure_channel(address, LOCAL) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            if method == "Watch":
                async for answer in stub.Watch(health_pb2.HealthCheckRequest(), metadata=metadata, timeout=10):
                    return grpc.StatusCode.OK, answer.status, {}
            call = stub.Check(health_pb2.HealthCheckRequest(), metadata=metadata, timeout=10)
            answer = await call
            return grpc.StatusCode.OK, answer.status, dict(await call.trailing_metadata())
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details(), {}


async def test_a_caller_with_the_scope_gets_through_the_chain(deployment):
    alice = await login(deployment, "alice")
    code, status, trailers = await check(deployment.orders, alice.access_token)
    assert (code, status) == (grpc.StatusCode.OK, health_pb2.HealthCheckResponse.SERVING)
    # orders saw alice; inventory saw orders' own client-credentials token.
    assert trailers["x-caller"] == deployment.alice
    assert trailers["x-upstream-caller"] == deployment.orders_client_id


async def test_callers_without_the_right_token_are_refused(deployment):
    bob = await login(deployment, "bob")  # scope "read", not "orders.read"
    alice = await login(deployment, "alice")
    unauthenticated = (grpc.StatusCode.UNAUTHENTICATED, "invalid token", {})
    assert await check(deployment.orders) == unauthenticated
    assert await check(deployment.orders, "not-a-token") == unauthenticated
    assert await check(deployment.orders, bob.access_token) == (
        grpc.StatusCode.PERMISSION_DENIED, "insufficient scope", {}
    )  # fmt: skip
    assert await check(deployment.inventory, alice.access_token) == unauthenticated  # not for inventory
    assert await check(deployment.orders, alice.access_token, method="Watch") == (
        grpc.StatusCode.PERMISSION_DENIED, "permission denied", {}
    )  # fmt: skip


async def test_a_revoked_token_is_refused_within_moments(deployment):
    alice = await login(deployment, "alice")
    assert (await check(deployment.orders, alice.access_token))[0] == grpc.StatusCode.OK
    async with AsyncAuthClient(grpc.aio.insecure_channel(deployment.authsvc)) as client:
        assert await client.revoke(alice.access_token) == 1
    deadline = time.monotonic() + 5
    while (await check(deployment.orders, alice.access_token))[0] == grpc.StatusCode.OK:
        assert time.monotonic() < deadline, "the revocation did not reach the example"
    refused = await check(deployment.orders, alice.access_token)
    assert refused[:2] == (grpc.StatusCode.UNAUTHENTICATED, "invalid token")
