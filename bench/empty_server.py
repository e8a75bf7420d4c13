"""The empty-RPC ceiling: a grpc.aio server set up as authsvc's (same options,
same asyncio event loop, same process model: ``--workers`` processes on one
port, as ``AUTHSVC_WORKERS``) whose only method does nothing.

``python -m bench.empty_server --port P --workers N`` prints
``empty server listening on 127.0.0.1:P`` once every worker listens.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import signal
import time
from multiprocessing.connection import Connection

import grpc
from google.protobuf import empty_pb2

from authsvc.config import Settings
from authsvc.server import server_options

METHOD = "/bench.Empty/Call"


async def _call(request: empty_pb2.Empty, context: object) -> empty_pb2.Empty:
    return empty_pb2.Empty()


async def _serve(port: int, shared: bool, ready: Connection | None) -> None:
    server = grpc.aio.server(options=server_options(Settings().max_message_bytes, shared_port=shared))
    handler = grpc.unary_unary_rpc_method_handler(
        _call, request_deserializer=empty_pb2.Empty.FromString, response_serializer=empty_pb2.Empty.SerializeToString
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Empty", {"Call": handler}),))
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is None:
        print(f"empty server listening on 127.0.0.1:{port}", flush=True)
    else:
        ready.send(port)
    await stop.wait()
    await server.stop(0.5)


def _worker(port: int, ready: Connection) -> None:
    asyncio.run(_serve(port, True, ready))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers == 1:
        asyncio.run(_serve(args.port, False, None))
        return
    # As authsvc's supervisor: spawned workers on one port, signals passed on.
    ctx = multiprocessing.get_context("spawn")
    lines = [ctx.Pipe(duplex=False) for _ in range(args.workers)]
    procs = [ctx.Process(target=_worker, args=(args.port, theirs)) for _, theirs in lines]
    for proc, (_, theirs) in zip(procs, lines, strict=True):
        proc.start()
        theirs.close()  # so a worker that dies before it listens reads as EOF
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    try:
        ports = {ours.recv() for ours, _ in lines}
    except EOFError:
        for proc in procs:
            proc.kill()
        raise SystemExit("empty server: a worker died before it listened") from None
    print(f"empty server listening on 127.0.0.1:{ports.pop()}", flush=True)
    while not stopping:
        time.sleep(0.1)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join()


if __name__ == "__main__":
    main()
