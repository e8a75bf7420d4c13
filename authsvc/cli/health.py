"""``authsvc health``: ask the local server's gRPC health service, for a
container's HEALTHCHECK (the image has no other probe)."""

from __future__ import annotations

import socket
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc.config import Settings

SERVICE = "authsvc.v1.AuthService"
TIMEOUT = 3.0
_ANY = ("0.0.0.0", "[::]", "::")  # noqa: S104 - the addresses we map to loopback, not a bind


def probe(settings: Settings) -> int:
    """0 when the server on AUTHSVC_LISTEN says SERVING, 1 otherwise.

    With TLS on the port there is no certificate to trust or present here
    (the server's own is not a client certificate): the probe then checks only
    that the port accepts connections, and says so."""
    host, _, port = settings.listen.rpartition(":")
    host = "127.0.0.1" if host in _ANY else host
    target = f"{host}:{port}"
    if settings.tls is not None:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT).close()
        except OSError as exc:
            print(f"authsvc health: {target}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"{target} accepts connections (TLS: the health service is not asked)")
        return 0
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=TIMEOUT
            )
        except grpc.RpcError as exc:
            print(f"authsvc health: {target}: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{target} {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1
