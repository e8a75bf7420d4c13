"""Txn-Tokens through real servers (grpc.aio, and the classic thread pool):
the server interceptor admits a call by its Txn-Token and hands the handler
its claims; the forwarder puts the same token on every call the handler makes
downstream, and on no other call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from authsvc.domain.identity import credentials
from authsvc_client import (
    TXN_TOKEN_TYPE,
    AsyncAuthClient,
    AsyncTxnTokenServerInterceptor,
    ClientCredential,
    TxnRequirements,
    TxnTokenForwarder,
    TxnTokenServerInterceptor,
    async_txn_token_forwarders,
    current_txn,
    current_txn_token,
    use_txn_token,
)

from ..conftest import unique
from ..integration.helpers import add_user, login
from ..support import FakeClock
from .test_interceptors import verifier_for

FRONT, BACK = "test.Front", "test.Back"
OK, UNAUTH, DENIED = grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED


def _view() -> dict[str, Any]:
    try:
        txn = current_txn()
    except LookupError:
        return {"txn": None}
    return {"txn": txn.txn, "sub": txn.sub, "scope": list(txn.scope), "tctx": dict(txn.tctx)}


def rules(trust_domain: str) -> dict[str, TxnRequirements]:
    return {
        f"/{FRONT}/Call": TxnRequirements(trust_domain, ("read",)),
        f"/{FRONT}/Admin": TxnRequirements(trust_domain, ("admin",)),
        f"/{BACK}/Echo": TxnRequirements(trust_domain),
        f"/{BACK}/Stream": TxnRequirements(trust_domain),
    }


def public() -> tuple[str, ...]:
    return (f"/{FRONT}/Public", f"/{FRONT}/Override")


def _encode(message: Any) -> bytes:
    return json.dumps(message).encode()


async def aio_pair(interceptor: AsyncTxnTokenServerInterceptor) -> tuple[list[grpc.aio.Server], int]:
    """back (echoes what its Txn-Token says) and front (calls back)."""

    async def echo(request: bytes, context: Any) -> bytes:
        return _encode(_view())

    async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for _ in range(2):
            yield _encode(_view())

    back = grpc.aio.server(interceptors=[interceptor])
    back.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(BACK, {
        "Echo": grpc.unary_unary_rpc_method_handler(echo), "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }),))  # fmt: skip
    back_port = back.add_insecure_port("127.0.0.1:0")
    await back.start()
    downstream: Any = grpc.aio.insecure_channel(f"127.0.0.1:{back_port}", interceptors=async_txn_token_forwarders())

    async def call(request: bytes, context: Any) -> bytes:
        try:
            unary = await downstream.unary_unary(f"/{BACK}/Echo")(b"", timeout=10)
            streamed = [json.loads(r) async for r in downstream.unary_stream(f"/{BACK}/Stream")(b"", timeout=10)]
        except grpc.aio.AioRpcError as err:  # back's answer, passed on
            await context.abort(err.code(), err.details())
        return _encode({"front": _view(), "back": json.loads(unary), "stream": streamed})

    async def override(request: bytes, context: Any) -> bytes:
        with use_txn_token(request.decode()):
            return await downstream.unary_unary(f"/{BACK}/Echo")(b"", timeout=10)

    front = grpc.aio.server(interceptors=[interceptor])
    front.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(FRONT, {
        name: grpc.unary_unary_rpc_method_handler(call) for name in ("Call", "Admin", "Public", "Unmapped")
    } | {"Override": grpc.unary_unary_rpc_method_handler(override)}),))  # fmt: skip
    port = front.add_insecure_port("127.0.0.1:0")
    await front.start()
    return [front, back], port


def sync_pair(interceptor: TxnTokenServerInterceptor) -> tuple[list[grpc.Server], int]:
    def echo(request: bytes, context: Any) -> bytes:
        return _encode(_view())

    def stream(request: bytes, context: Any) -> Iterator[bytes]:
        for _ in range(2):
            yield _encode(_view())

    # One worker each: every call runs on the same thread, so a leaked token would show.
    back = grpc.server(futures.ThreadPoolExecutor(max_workers=1), interceptors=[interceptor])
    back.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(BACK, {
        "Echo": grpc.unary_unary_rpc_method_handler(echo), "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }),))  # fmt: skip
    back_port = back.add_insecure_port("127.0.0.1:0")
    back.start()
    downstream: Any = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{back_port}"), TxnTokenForwarder())

    def call(request: bytes, context: Any) -> bytes:
        try:
            unary = downstream.unary_unary(f"/{BACK}/Echo")(b"", timeout=10)
            streamed = [json.loads(r) for r in downstream.unary_stream(f"/{BACK}/Stream")(b"", timeout=10)]
        except grpc.RpcError as err:  # back's answer, passed on
            context.abort(err.code(), err.details())
        return _encode({"front": _view(), "back": json.loads(unary), "stream": streamed})

    def override(request: bytes, context: Any) -> bytes:
        with use_txn_token(request.decode()):
            answer: bytes = downstream.unary_unary(f"/{BACK}/Echo")(b"", timeout=10)
            return answer

    front = grpc.server(futures.ThreadPoolExecutor(max_workers=1), interceptors=[interceptor])
    front.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(FRONT, {
        name: grpc.unary_unary_rpc_method_handler(call) for name in ("Call", "Admin", "Public", "Unmapped")
    } | {"Override": grpc.unary_unary_rpc_method_handler(override)}),))  # fmt: skip
    port = front.add_insecure_port("127.0.0.1:0")
    front.start()
    return [front, back], port


@dataclass
class Chain:
    port: int
    trust_domain: str

    async def __call__(self, method: str, txn: str | None = None, body: bytes = b"") -> tuple[grpc.StatusCode, Any]:
        metadata = (("txn-token", txn),) if txn is not None else ()
        channel: Any
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            try:
                answer = await channel.unary_unary(f"/{FRONT}/{method}")(body, metadata=metadata, timeout=15)
            except grpc.aio.AioRpcError as err:
                return err.code(), err.details()
        return OK, json.loads(answer)


@pytest.fixture(params=["aio", "threadpool"])
async def chain(request, authsvc, settings, fake_clock) -> AsyncIterator[Chain]:
    own = FakeClock(fake_clock.now())
    verifier = verifier_for(authsvc, settings, own)
    domain = settings.policy.trust_domain
    if request.param == "aio":
        await verifier.start()
        servers, port = await aio_pair(AsyncTxnTokenServerInterceptor(verifier, rules(domain), public=public()))
        yield Chain(port, domain)
        for aio in servers:
            await aio.stop(0)
        await verifier.close()
    else:
        await asyncio.to_thread(verifier.start_in_thread)
        threaded, port = sync_pair(TxnTokenServerInterceptor(verifier, rules(domain), public=public()))
        yield Chain(port, domain)
        for server in threaded:
            await asyncio.to_thread(server.stop(0).wait)
        await asyncio.to_thread(verifier.close_in_thread)


async def txn_token(
    authsvc, authsvc_stub, store, passwords, clock, trust_domain: str, scope=("read",)
) -> tuple[str, str]:
    """(a Txn-Token for a new user, the user's id)."""
    user = await add_user(store, passwords, clock, scopes=("read", "admin"), audiences=("gateway",))
    pair = await login(authsvc_stub, user, audience=["gateway"])
    client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
    await store.create_client(
        client_id, unique("gw"), credentials.digest(secret), ("read", "admin"), ("gateway",), clock.now(),
        exchange_audiences=(trust_domain,),
    )  # fmt: skip
    async with AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{authsvc.port}")) as client:
        got = await client.exchange_token(
            ClientCredential(client_id, secret), pair.access_token, requested_token_type=TXN_TOKEN_TYPE,
            audience=[trust_domain], scope=list(scope), request_details={"order": 7},
        )  # fmt: skip
    return got.access_token, user.id


async def test_the_token_reaches_the_handler_and_every_call_it_makes(
    chain, authsvc, authsvc_stub, store, passwords, fake_clock
):
    token, user_id = await txn_token(authsvc, authsvc_stub, store, passwords, fake_clock, chain.trust_domain)
    code, answer = await chain("Call", token)
    assert code == OK, answer
    front = answer["front"]
    assert (front["sub"], front["scope"], front["tctx"]) == (user_id, ["read"], {"order": 7})
    assert answer["back"] == front  # the same token, forwarded as it was
    assert answer["stream"] == [front, front]  # on streaming calls too


async def test_no_token_forwarded_outside_a_txn_call(chain, authsvc, authsvc_stub, store, passwords, fake_clock):
    # A public method has no Txn-Token in hand: its downstream call carries none and is refused.
    assert await chain("Public") == (UNAUTH, "invalid token")
    token, _ = await txn_token(authsvc, authsvc_stub, store, passwords, fake_clock, chain.trust_domain)
    assert (await chain("Call", token))[0] == OK
    assert await chain("Public") == (UNAUTH, "invalid token")  # nothing left behind by the call before


async def test_use_txn_token_forwards_another_token(chain, authsvc, authsvc_stub, store, passwords, fake_clock):
    token, user_id = await txn_token(authsvc, authsvc_stub, store, passwords, fake_clock, chain.trust_domain)
    code, answer = await chain("Override", body=token.encode())
    assert (code, answer["sub"]) == (OK, user_id)


async def test_missing_bad_or_narrow_tokens_are_refused(chain, authsvc, authsvc_stub, store, passwords, fake_clock):
    assert await chain("Call") == (UNAUTH, "invalid token")
    assert await chain("Call", "garbage") == (UNAUTH, "invalid token")
    token, _ = await txn_token(authsvc, authsvc_stub, store, passwords, fake_clock, chain.trust_domain)
    header, payload, signature = token.split(".")
    assert await chain("Call", f"{header}.{payload[:-2]}AA.{signature}") == (UNAUTH, "invalid token")
    assert await chain("Admin", token) == (DENIED, "insufficient scope")
    assert await chain("Unmapped", token) == (DENIED, "permission denied")


async def test_an_access_token_is_no_txn_token(chain, authsvc, authsvc_stub, store, passwords, fake_clock):
    user = await add_user(store, passwords, fake_clock, scopes=("read",), audiences=(chain.trust_domain,))
    pair = await login(authsvc_stub, user, audience=[chain.trust_domain])
    assert await chain("Call", pair.access_token) == (UNAUTH, "invalid token")


def test_current_txn_outside_a_call_is_a_lookup_error():
    with pytest.raises(LookupError):
        current_txn()
    with pytest.raises(LookupError):
        current_txn_token()
