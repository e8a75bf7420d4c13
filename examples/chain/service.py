"""A call chain carried by a Transaction Token: gateway -> orders -> payments.

* ``gateway`` serves ``/example.Gateway/PlaceOrder`` to users: the caller needs
  an access token for the audience ``gateway`` with the scope ``orders.write``.
  It exchanges that token (ExchangeToken, ``requested_token_type`` txn_token)
  for a Txn-Token for the trust domain, scoped ``orders.write
  payments.charge``, with the order as its transaction context (``tctx``), the
  caller's address in ``rctx`` and the purpose ``place-order``; then it calls
  orders. The user's access token goes no further than the gateway.
* ``orders`` serves ``/example.Orders/Create``, admitted by the Txn-Token
  alone (scope ``orders.write``). It replaces the token with a narrower one
  (scope ``payments.charge``; ``tctx`` gains the order id) and calls payments.
* ``payments`` serves ``/example.Payments/Charge`` (scope ``payments.charge``)
  and answers with what the Txn-Token told it: the user, the purpose, the
  context, the workloads that asked for the token.

Messages are JSON (no .proto to compile); the Txn-Token travels in the
``txn-token`` metadata, put there by the client package's forwarder::

    .venv/bin/python examples/chain/service.py payments --authsvc 127.0.0.1:50051 --trust-domain example.org
    .venv/bin/python examples/chain/service.py orders --authsvc 127.0.0.1:50051 --trust-domain example.org \
        --upstream PAYMENTS_HOST:PORT
    .venv/bin/python examples/chain/service.py gateway --authsvc 127.0.0.1:50051 --trust-domain example.org \
        --upstream ORDERS_HOST:PORT
    .venv/bin/python examples/chain/service.py order --authsvc 127.0.0.1:50051 --upstream GATEWAY_HOST:PORT \
        <<< 'password'

gateway and orders authenticate to authsvc as service clients (CLIENT_ID and
CLIENT_SECRET) whose exchange policy names the trust domain. Loopback only,
with local credentials; use ``grpc.ssl_*_credentials`` across a network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from authsvc_client import (
    TXN_TOKEN_TYPE,
    AsyncAuthClient,
    AsyncAuthServerInterceptor,
    AsyncTxnTokenServerInterceptor,
    AuthsvcError,
    ClientCredential,
    PasswordCredential,
    PermissionDenied,
    Requirements,
    RevocationEvent,
    TokenPair,
    TokenVerifier,
    TxnRequirements,
    async_txn_token_forwarders,
    current_claims,
    current_txn,
    current_txn_token,
    use_txn_token,
)

LOCAL = grpc.LocalConnectionType.LOCAL_TCP
PLACE_ORDER = "/example.Gateway/PlaceOrder"
CREATE = "/example.Orders/Create"
CHARGE = "/example.Payments/Charge"


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _decode(data: bytes) -> dict[str, Any]:
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("a JSON object is expected")
    return message


def _handler(fn: Callable[[dict[str, Any], Any], Any]) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=_decode, response_serializer=_encode)


def _peer_ip(peer: str) -> str:
    """The address in grpc's peer string ("ipv4:127.0.0.1:5555", "ipv6:[::1]:5555")."""
    return peer.partition(":")[2].rpartition(":")[0].strip("[]")


def _bearer(context: Any) -> str:
    """The caller's access token (the interceptor has verified it already)."""
    value = dict(context.invocation_metadata())["authorization"]
    return str(value).partition(" ")[2].strip()


@dataclass
class Running:
    """One service of the chain, started: its server, port and verifier."""

    server: grpc.aio.Server
    port: int
    verifier: TokenVerifier
    closers: list[Callable[[], Any]] = field(default_factory=list)

    async def close(self, grace: float = 2.0) -> None:
        await self.server.stop(grace)
        for close in reversed(self.closers):
            await close()


class Chain:
    def __init__(self, authsvc: AsyncAuthClient, client: ClientCredential | None, trust_domain: str,
                 upstream: grpc.aio.Channel | None) -> None:  # fmt: skip
        self._authsvc = authsvc
        self._client = client
        self._trust_domain = trust_domain
        self._upstream = upstream

    async def _call(self, method: str, message: dict[str, Any]) -> dict[str, Any]:
        assert self._upstream is not None
        call = self._upstream.unary_unary(method, request_serializer=_encode, response_deserializer=_decode)
        answer: dict[str, Any] = await call(message, timeout=10)
        return answer

    async def place_order(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        """gateway: trade the user's token for a Txn-Token, then call orders."""
        assert self._client is not None
        order = {"item": str(request.get("item", "")), "amount": int(request.get("amount", 0))}
        try:
            txn = await self._authsvc.exchange_token(
                self._client, _bearer(context), requested_token_type=TXN_TOKEN_TYPE,
                audience=[self._trust_domain], scope=["orders.write", "payments.charge"],
                request_details=order, request_context={"req_ip": _peer_ip(context.peer())},
                purpose="place-order",
            )  # fmt: skip
        except PermissionDenied:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "exchange refused")
        except AuthsvcError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "authsvc did not answer")
        with use_txn_token(txn.access_token):  # every call below carries it
            answer = await self._call(CREATE, order)
        return {**answer, "caller": current_claims().sub}

    async def create(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        """orders: narrow the Txn-Token to what payments needs, then call it."""
        assert self._client is not None
        order_id = str(uuid.uuid4())
        narrower = await self._authsvc.exchange_token(
            self._client, current_txn_token(), subject_token_type=TXN_TOKEN_TYPE,
            requested_token_type=TXN_TOKEN_TYPE, audience=[self._trust_domain], scope=["payments.charge"],
            request_details={"order_id": order_id},
        )  # fmt: skip
        with use_txn_token(narrower.access_token):
            return await self._call(CHARGE, {"amount": request.get("amount")})

    async def charge(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        """payments: everything it knows comes from the Txn-Token."""
        txn = current_txn()
        return {
            "sub": txn.sub, "purp": txn.purp, "txn": txn.txn, "scope": list(txn.scope), "req_wl": list(txn.req_wl),
            "tctx": dict(txn.tctx), "rctx": dict(txn.rctx),
            "saw_access_token": any(k == "authorization" for k, _ in context.invocation_metadata() or ()),
        }  # fmt: skip


async def start(
    role: str,
    *,
    authsvc: str,
    issuer: str,
    trust_domain: str,
    listen: str = "127.0.0.1:0",
    upstream: str | None = None,
    client: ClientCredential | None = None,
    clock: Callable[[], float] = time.time,
    on_revocation: Callable[[RevocationEvent], None] | None = None,
) -> Running:
    """Start one service of the chain on this event loop (``clock`` and
    ``on_revocation`` go to its TokenVerifier)."""
    auth = AsyncAuthClient(grpc.aio.insecure_channel(authsvc))
    verifier = TokenVerifier(auth, issuer=issuer, clock=clock, on_revocation=on_revocation)
    await verifier.start()
    channel = None
    if upstream:
        channel = grpc.aio.secure_channel(
            upstream, grpc.local_channel_credentials(LOCAL), interceptors=async_txn_token_forwarders()
        )
    chain = Chain(auth, client, trust_domain, channel)
    if role == "gateway":
        interceptor: Any = AsyncAuthServerInterceptor(
            verifier, {PLACE_ORDER: Requirements(audience="gateway", scopes=("orders.write",))}
        )
        service, method, fn = "example.Gateway", "PlaceOrder", chain.place_order
    elif role == "orders":
        interceptor = AsyncTxnTokenServerInterceptor(
            verifier, {CREATE: TxnRequirements(trust_domain, ("orders.write",))}
        )
        service, method, fn = "example.Orders", "Create", chain.create
    else:
        interceptor = AsyncTxnTokenServerInterceptor(
            verifier, {CHARGE: TxnRequirements(trust_domain, ("payments.charge",))}
        )
        service, method, fn = "example.Payments", "Charge", chain.charge
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: _handler(fn)}),))
    port = server.add_secure_port(listen, grpc.local_server_credentials(LOCAL))
    await server.start()
    running = Running(server, port, verifier, [auth.close, verifier.close])
    if channel is not None:
        running.closers.append(channel.close)
    return running


async def place_order(args: argparse.Namespace) -> None:
    """A user: log in (password on stdin), call the gateway, print its answer."""
    async with AsyncAuthClient(grpc.aio.insecure_channel(args.authsvc)) as auth:
        pair = await auth.issue(PasswordCredential(args.user, sys.stdin.readline().rstrip("\n")), audience=["gateway"])
    assert isinstance(pair, TokenPair)
    async with grpc.aio.secure_channel(args.upstream, grpc.local_channel_credentials(LOCAL)) as channel:
        call = channel.unary_unary(PLACE_ORDER, request_serializer=_encode, response_deserializer=_decode)
        order = {"item": args.item, "amount": args.amount}
        answer = await call(order, metadata=(("authorization", f"Bearer {pair.access_token}"),), timeout=15)
    print(json.dumps(answer, indent=2, sort_keys=True))


async def main(args: argparse.Namespace) -> None:
    if args.role == "order":
        await place_order(args)
        return
    client = None
    if args.role in ("gateway", "orders"):
        client = ClientCredential(os.environ["CLIENT_ID"], os.environ["CLIENT_SECRET"])
    running = await start(
        args.role, authsvc=args.authsvc, issuer=args.issuer, trust_domain=args.trust_domain, listen=args.listen,
        upstream=args.upstream, client=client,
    )  # fmt: skip
    print(f"{args.role} listening on {args.listen.rpartition(':')[0]}:{running.port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=("gateway", "orders", "payments", "order"),
                        help="a service of the chain, or `order`: a user placing one through the gateway")
    parser.add_argument("--authsvc", required=True, help="authsvc address, host:port")
    parser.add_argument("--issuer", default="authsvc", help="authsvc's issuer (AUTHSVC_ISSUER)")
    parser.add_argument("--trust-domain", default="authsvc", help="the Txn-Tokens' trust domain (AUTHSVC_TRUST_DOMAIN)")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--upstream", help="the next service, host:port (gateway and orders; order: the gateway)")
    parser.add_argument("--user", default="carol", help="order: who logs in (the password is read from stdin)")
    parser.add_argument("--item", default="book", help="order: what to order")
    parser.add_argument("--amount", type=int, default=12, help="order: how much to pay")
    args = parser.parse_args()
    if args.role != "payments" and not args.upstream:
        parser.error(f"{args.role} needs --upstream")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
