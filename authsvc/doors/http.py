"""The HTTP side port (off unless AUTHSVC_HTTP_LISTEN is set):
``/.well-known/jwks.json`` for browsers and non-gRPC services, ``/metrics``
for Prometheus, ``/healthz``. GET only, tiny requests, one answer per
connection: it serves public data and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT = 5.0

Route = Callable[[], tuple[int, str, str]]  # -> (status, content type, body)


class SidePort:
    def __init__(self, routes: dict[str, Route]) -> None:
        self._routes = routes
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, listen: str) -> int:
        host, _, port = listen.rpartition(":")
        self._server = await asyncio.start_server(self._handle, host.strip("[]"), int(port), limit=MAX_REQUEST_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body = await asyncio.wait_for(self._answer(reader), READ_TIMEOUT)
        except (TimeoutError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            status, ctype, body = 400, "text/plain", "bad request\n"
        payload = body.encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
            "Access-Control-Allow-Origin: *\r\nCache-Control: max-age=60\r\n"
            "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + payload)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, str]:
        request_line = (await reader.readline()).decode("latin-1").strip()
        while (await reader.readline()).strip():
            pass  # headers: none of them changes the answer
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method != "GET":
            return 405, "text/plain", "only GET\n"
        route = self._routes.get(path)
        if route is None:
            return 404, "text/plain", "not found\n"
        return route()


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
