"""End to end: the delegation example (examples/chain/service.py), gateway ->
orders -> payments, against a real ``authsvc serve`` process.

The three services run as processes for the happy path, as the example's
docstring starts them. The rules that need time or a second trust domain run
the same code in this process (the example's ``start``), with a fake clock
for the verifier.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from authsvc_client import (
    TXN_TOKEN_TYPE,
    AsyncAuthClient,
    AuthsvcError,
    ClientCredential,
    PasswordCredential,
    PermissionDenied,
    RevocationEvent,
    TokenPair,
)

from ..support import FakeClock, create_database, drop_database
from .procs import BIN, cli, running, server_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "chain" / "service.py"
TRUST_DOMAIN = "example.org"
PASSWORD = "correct horse battery staple"
LOCAL = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
# The README's commands, as arguments (rendered by `readme_line`).
USER_ADD = ("user", "add", "carol", "--scope", "orders.write", "--scope", "payments.charge", "--audience", "gateway",
            "--password-stdin")  # fmt: skip
GATEWAY_ADD = ("client", "add", "gateway", "--scope", "orders.write", "--scope", "payments.charge",
               "--audience", "gateway", "--exchange-audience", TRUST_DOMAIN)  # fmt: skip
ORDERS_ADD = ("client", "add", "orders", "--scope", "payments.charge", "--audience", "payments",
              "--exchange-audience", TRUST_DOMAIN)  # fmt: skip
README_AUTHSVC = "localhost:50051"


def example_args(role: str, authsvc: str, upstream: str | None = None) -> list[str]:
    args = [role, "--authsvc", authsvc]
    if role != "order":
        args += ["--trust-domain", TRUST_DOMAIN]
    return args + (["--upstream", upstream] if upstream else [])


def readme_line(role: str, upstream_var: str | None = None) -> str:
    upstream = f"${upstream_var}" if upstream_var else None
    return " ".join([".venv/bin/python", "examples/chain/service.py", *example_args(role, README_AUTHSVC, upstream)])


#: How soon a revocation must reach a service's verifier: authsvc reads its
#: revocation log every AUTHSVC_RECONCILE_MS (1 s) whatever happens (NOTIFY
#: only makes it sooner), and the stream delivers at once; 2 s more for a
#: loaded CI host.
PROPAGATION_BOUND = 3.0


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chain_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


chain = _example()


@dataclass
class Deployment:
    authsvc: str
    gateway: str  # address of the gateway process
    payments: str
    carol: str  # subject id
    gateway_client: ClientCredential
    orders_client: ClientCredential
    lazy_client: ClientCredential  # no exchange policy
    tmp: Path


@pytest.fixture(scope="module")
async def chain_database(admin_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_url, prefix="authsvc_chain")
    yield url
    await drop_database(admin_url, url)


def _client(printed: str) -> ClientCredential:
    found = re.search(r"client_id:\s+(\S+)\nclient_secret:\s+(\S+)", printed)
    assert found, "unexpected `client add` output"
    return ClientCredential(found.group(1), found.group(2))


@pytest.fixture(scope="module")
def deployment(chain_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("chain")
    env = server_env(chain_database, tmp / "data", AUTHSVC_TRUST_DOMAIN=TRUST_DOMAIN)
    out = cli(env, *USER_ADD, stdin=PASSWORD + "\n")
    carol = re.search(r"subject (\S+)", out)
    assert carol, out
    gateway, orders = _client(cli(env, *GATEWAY_ADD)), _client(cli(env, *ORDERS_ADD))
    lazy = _client(cli(env, "client", "add", "lazy", "--scope", "orders.write", "--audience", "gateway"))
    python = sys.executable
    plain = {k: v for k, v in env.items() if not k.startswith("AUTHSVC_")}

    def role(name: str, upstream: str | None, client: ClientCredential | None) -> list[str]:
        return [python, str(EXAMPLE), *example_args(name, authsvc, upstream)]

    with (
        running([str(BIN / "authsvc"), "serve"], env, tmp / "authsvc.log") as (_, authsvc),
        running(role("payments", None, None), plain, tmp / "payments.log") as (_, payments),
    ):
            orders_env = {**plain, "CLIENT_ID": orders.client_id, "CLIENT_SECRET": orders.client_secret}
            with running(role("orders", payments, orders), orders_env, tmp / "orders.log") as (_, orders_addr):
                gw_env = {**plain, "CLIENT_ID": gateway.client_id, "CLIENT_SECRET": gateway.client_secret}
                with running(role("gateway", orders_addr, gateway), gw_env, tmp / "gateway.log") as (_, gw_addr):
                    yield Deployment(authsvc, gw_addr, payments, carol.group(1), gateway, orders, lazy, tmp)


async def login(d: Deployment, audience: str = "gateway") -> TokenPair:
    async with AsyncAuthClient(grpc.aio.insecure_channel(d.authsvc)) as client:
        pair = await client.issue(PasswordCredential("carol", PASSWORD), audience=[audience])
    assert isinstance(pair, TokenPair)
    return pair


async def call(address: str, method: str, message: dict[str, Any], metadata: tuple[tuple[str, str], ...] = ()):
    """(status code, answer or details)."""
    async with grpc.aio.secure_channel(address, LOCAL) as channel:
        stub = channel.unary_unary(method, request_serializer=lambda m: json.dumps(m).encode(),
                                   response_deserializer=json.loads)  # fmt: skip
        try:
            return grpc.StatusCode.OK, await stub(message, metadata=metadata, timeout=15)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details()


async def txn_token(d: Deployment, subject: str, **kw: Any) -> str:
    """A Txn-Token as the gateway gets one."""
    async with AsyncAuthClient(grpc.aio.insecure_channel(d.authsvc)) as client:
        got = await client.exchange_token(
            kw.pop("actor", d.gateway_client), subject, requested_token_type=TXN_TOKEN_TYPE,
            audience=[TRUST_DOMAIN], scope=kw.pop("scope", ["payments.charge"]),
            request_details=kw.pop("details", {"item": "book", "amount": 12}), purpose="place-order", **kw,
        )  # fmt: skip
    assert got.token_type == "N_A" and got.issued_token_type == TXN_TOKEN_TYPE
    return got.access_token


def charge(token: str) -> tuple[tuple[str, str], ...]:
    return (("txn-token", token),)


def test_the_readme_shows_these_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Delegation", 1)[1].split("\n## ", 1)[0]
    for args in (USER_ADD, GATEWAY_ADD, ORDERS_ADD):
        assert " ".join((".venv/bin/authsvc", *args)) in section, args
    for line in (readme_line("payments"), readme_line("orders", "PAYMENTS"), readme_line("gateway", "ORDERS"),
                 readme_line("order", "GATEWAY")):  # fmt: skip
        assert line in section, line
    assert f"AUTHSVC_TRUST_DOMAIN={TRUST_DOMAIN} make run" in section


async def test_the_happy_path_payments_sees_the_user_purpose_and_context(deployment):
    # A user, as the README orders: `service.py order`, with the password on stdin.
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(EXAMPLE), *example_args("order", deployment.authsvc, deployment.gateway)],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["sub"] == answer["caller"] == deployment.carol  # the original user, three hops away
    assert answer["purp"] == "place-order"
    order = answer["tctx"]
    assert (order["item"], order["amount"]) == ("book", 12) and order["order_id"]  # orders added the id
    assert answer["rctx"] == {"req_ip": "127.0.0.1", "authn": "pwd", "req_wl": deployment.gateway_client.client_id}
    # Asked for by the gateway, narrowed by orders to what payments needs.
    assert answer["req_wl"] == [deployment.gateway_client.client_id, deployment.orders_client.client_id]
    assert answer["scope"] == ["payments.charge"]
    assert answer["saw_access_token"] is False  # payments never saw carol's access token


async def test_a_user_without_a_token_gets_nowhere(deployment):
    assert await call(deployment.gateway, chain.PLACE_ORDER, {"item": "book"}) == (
        grpc.StatusCode.UNAUTHENTICATED, "invalid token",
    )  # fmt: skip
    assert (await call(deployment.payments, chain.CHARGE, {}))[0] == grpc.StatusCode.UNAUTHENTICATED


def _edited(token: str, change: dict[str, Any]) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tctx"].update(change)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


async def test_a_txn_token_whose_tctx_was_edited_is_refused(deployment):
    token = await txn_token(deployment, (await login(deployment)).access_token)
    assert (await call(deployment.payments, chain.CHARGE, {}, charge(token)))[0] == grpc.StatusCode.OK
    forged = _edited(token, {"amount": 12_000})
    assert await call(deployment.payments, chain.CHARGE, {}, charge(forged)) == (
        grpc.StatusCode.UNAUTHENTICATED, "invalid token",
    )  # fmt: skip


async def in_process(d: Deployment, clock: FakeClock, trust_domain: str = TRUST_DOMAIN, **kw: Any):
    return await chain.start("payments", authsvc=d.authsvc, issuer="authsvc", trust_domain=trust_domain,
                             clock=clock.now, **kw)  # fmt: skip


async def test_an_expired_txn_token_is_refused(deployment):
    clock = FakeClock()
    payments = await in_process(deployment, clock)
    try:
        token = await txn_token(deployment, (await login(deployment)).access_token)
        address = f"127.0.0.1:{payments.port}"
        assert (await call(address, chain.CHARGE, {}, charge(token)))[0] == grpc.StatusCode.OK
        clock.advance(60 + 30 + 1)  # past its 60 s and the verifier's 30 s leeway
        assert await call(address, chain.CHARGE, {}, charge(token)) == (
            grpc.StatusCode.UNAUTHENTICATED, "invalid token",
        )  # fmt: skip
    finally:
        await payments.close(0)


async def test_a_txn_token_is_refused_in_another_trust_domain(deployment):
    elsewhere = await in_process(deployment, FakeClock(), trust_domain="other.example")
    try:
        token = await txn_token(deployment, (await login(deployment)).access_token)
        assert await call(f"127.0.0.1:{elsewhere.port}", chain.CHARGE, {}, charge(token)) == (
            grpc.StatusCode.UNAUTHENTICATED, "invalid token",
        )  # fmt: skip
        # Nor can one be asked for another domain.
        with pytest.raises(AuthsvcError, match="trust domain"):
            async with AsyncAuthClient(grpc.aio.insecure_channel(deployment.authsvc)) as client:
                await client.exchange_token(deployment.gateway_client, (await login(deployment)).access_token,
                                            requested_token_type=TXN_TOKEN_TYPE, audience=["other.example"],
                                            scope=["payments.charge"])  # fmt: skip
    finally:
        await elsewhere.close(0)


async def test_a_replacement_narrows_and_adds_but_never_widens(deployment):
    subject = (await login(deployment)).access_token
    token = await txn_token(deployment, subject, scope=["orders.write", "payments.charge"])
    async with AsyncAuthClient(grpc.aio.insecure_channel(deployment.authsvc)) as client:

        async def replace(subject: str, scope: list[str], details: dict[str, Any] | None = None) -> str:
            got = await client.exchange_token(
                deployment.orders_client, subject, subject_token_type=TXN_TOKEN_TYPE,
                requested_token_type=TXN_TOKEN_TYPE, audience=[TRUST_DOMAIN], scope=scope, request_details=details,
            )  # fmt: skip
            return got.access_token

        narrow = await replace(token, ["payments.charge"], {"order_id": "o-1"})
        for wider in (["orders.write"], ["payments.charge", "orders.write"], ["payments.charge", "admin"]):
            with pytest.raises(PermissionDenied):
                await replace(narrow, wider)
        with pytest.raises(PermissionDenied):  # an asserted value never changes
            await replace(narrow, ["payments.charge"], {"amount": 12_000})
    code, seen = await call(deployment.payments, chain.CHARGE, {}, charge(narrow))
    assert code == grpc.StatusCode.OK
    code, original = await call(deployment.payments, chain.CHARGE, {}, charge(token))
    assert (seen["txn"], seen["sub"]) == (original["txn"], original["sub"])  # the same transaction and subject
    assert seen["scope"] == ["payments.charge"] and seen["tctx"] == {**original["tctx"], "order_id": "o-1"}


async def test_revoking_the_session_ends_the_exchanged_tokens_within_the_bound(deployment):
    pair = await login(deployment)
    revoked = asyncio.Event()

    def seen(event: RevocationEvent) -> None:
        if event.kind == "session" and event.value == pair.session_id:
            revoked.set()

    payments = await in_process(deployment, FakeClock(), on_revocation=seen)
    try:
        address = f"127.0.0.1:{payments.port}"
        token = await txn_token(deployment, pair.access_token)
        assert (await call(address, chain.CHARGE, {}, charge(token)))[0] == grpc.StatusCode.OK
        own = await login(deployment, audience="authsvc")
        async with AsyncAuthClient(grpc.aio.insecure_channel(deployment.authsvc)) as client:
            await client.revoke(session_id=pair.session_id, access_token=own.access_token)
            started = time.monotonic()
            await asyncio.wait_for(revoked.wait(), PROPAGATION_BOUND)
            assert time.monotonic() - started < PROPAGATION_BOUND
            assert await call(address, chain.CHARGE, {}, charge(token)) == (
                grpc.StatusCode.UNAUTHENTICATED, "invalid token",
            )  # fmt: skip
            with pytest.raises(AuthsvcError, match="invalid subject_token"):  # and no new one from the session
                await txn_token(deployment, pair.access_token)
    finally:
        await payments.close(0)


async def test_an_actor_without_the_exchange_policy_is_refused(deployment):
    pair = await login(deployment)
    with pytest.raises(PermissionDenied):
        await txn_token(deployment, pair.access_token, actor=deployment.lazy_client)
