"""A downstream service that trusts authsvc, and calls another one that does.

Its own RPC is ``grpc.health.v1.Health/Check``: the caller needs an access token
for ``--audience`` with ``--scope``. With ``--upstream`` it first calls that
service's Check with its own token (client credentials from CLIENT_ID and
CLIENT_SECRET, refreshed before expiry). Each service names its caller in the
trailing metadata ``x-caller``, so the chain can be seen from outside::

    .venv/bin/python examples/downstream/service.py --authsvc 127.0.0.1:50051 \\
        --audience inventory --scope inventory.read
    CLIENT_ID=... CLIENT_SECRET=... .venv/bin/python examples/downstream/service.py --authsvc 127.0.0.1:50051 \\
        --audience orders --scope orders.read --upstream 127.0.0.1:PORT --upstream-audience inventory

Loopback only, with local credentials; use ``grpc.ssl_*_credentials`` across a network.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc_client import (
    AsyncAuthClient,
    AsyncAuthServerInterceptor,
    AsyncClientCredentialsAuth,
    Requirements,
    TokenVerifier,
    current_claims,
)

LOCAL = grpc.LocalConnectionType.LOCAL_TCP
CHECK = "/grpc.health.v1.Health/Check"


class Service(health_pb2_grpc.HealthServicer):  # type: ignore[misc]  # grpc_health is untyped
    def __init__(self, upstream: health_pb2_grpc.HealthStub | None) -> None:
        self._upstream = upstream

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        trailers = [("x-caller", current_claims().sub)]  # the verified caller, from the interceptor
        status = health_pb2.HealthCheckResponse.SERVING
        if self._upstream is not None:
            call = self._upstream.Check(health_pb2.HealthCheckRequest(), timeout=5)
            status = (await call).status
            trailers += [("x-upstream-caller", v) for k, v in await call.trailing_metadata() if k == "x-caller"]
        context.set_trailing_metadata(trailers)
        return health_pb2.HealthCheckResponse(status=status)


async def main(args: argparse.Namespace) -> None:
    authsvc = AsyncAuthClient(grpc.aio.insecure_channel(args.authsvc))
    verifier = TokenVerifier(authsvc, issuer=args.issuer)
    await verifier.start()
    upstream = None
    if args.upstream:
        auth = AsyncClientCredentialsAuth(
            authsvc, os.environ["CLIENT_ID"], os.environ["CLIENT_SECRET"], audience=[args.upstream_audience]
        )
        creds = grpc.composite_channel_credentials(grpc.local_channel_credentials(LOCAL), auth.call_credentials())
        upstream = health_pb2_grpc.HealthStub(grpc.aio.secure_channel(args.upstream, creds))
    rules = {CHECK: Requirements(audience=args.audience, scopes=(args.scope,))}
    server = grpc.aio.server(interceptors=[AsyncAuthServerInterceptor(verifier, rules)])
    health_pb2_grpc.add_HealthServicer_to_server(Service(upstream), server)
    port = server.add_secure_port(args.listen, grpc.local_server_credentials(LOCAL))
    await server.start()
    print(f"{args.audience} listening on {args.listen.rpartition(':')[0]}:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(2)
    await verifier.close()
    await authsvc.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--authsvc", required=True, help="authsvc address, host:port")
    parser.add_argument("--issuer", default="authsvc", help="authsvc's issuer (AUTHSVC_ISSUER)")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--audience", required=True, help="this service's audience")
    parser.add_argument("--scope", required=True, help="the scope a caller needs")
    parser.add_argument("--upstream", help="another protected service to call, host:port")
    parser.add_argument("--upstream-audience", help="the audience of the upstream service")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
