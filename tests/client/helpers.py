"""Test helpers for the client package: a TCP proxy that can cut the line,
a port with nothing listening, and call counters for channels."""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

import grpc

# Reconnect quickly after the proxy comes back (gRPC's default starts at 1 s).
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]


def dead_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target until stopped; stopping
    also cuts every open connection, as a crashed host or a partition would."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in self._transports:
            transport.abort()
        self._transports.clear()
        await asyncio.sleep(0)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._transports.update((writer.transport, up_writer.transport))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def _name(method: Any) -> str:
    return method.decode() if isinstance(method, bytes) else str(method)


class AsyncCounter(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Counts unary calls per method name ("Issue", "GetJWKS", ...)."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        self.calls[_name(client_call_details.method).rsplit("/", 1)[-1]] += 1
        return await continuation(client_call_details, request)


class SyncCounter(grpc.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    def intercept_unary_unary(self, continuation, client_call_details, request):
        self.calls[_name(client_call_details.method).rsplit("/", 1)[-1]] += 1
        return continuation(client_call_details, request)


async def eventually(predicate, timeout: float = 5.0, interval: float = 0.01) -> None:
    """Wait (real time, briefly) for something another task or process does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
