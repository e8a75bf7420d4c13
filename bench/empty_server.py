"""The empty-RPC ceiling: a grpc.aio server set up as authsvc's (same options,
same asyncio event loop, one process) whose only method does nothing.

``python -m bench.empty_server`` prints ``empty server listening on 127.0.0.1:PORT``.
"""

from __future__ import annotations

import asyncio
import signal

import grpc
from google.protobuf import empty_pb2

from authsvc.config import Settings
from authsvc.server import server_options

METHOD = "/bench.Empty/Call"


async def _call(request: empty_pb2.Empty, context: object) -> empty_pb2.Empty:
    return empty_pb2.Empty()


async def main() -> None:
    server = grpc.aio.server(options=server_options(Settings().max_message_bytes))
    handler = grpc.unary_unary_rpc_method_handler(
        _call, request_deserializer=empty_pb2.Empty.FromString, response_serializer=empty_pb2.Empty.SerializeToString
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Empty", {"Call": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"empty server listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


if __name__ == "__main__":
    asyncio.run(main())
