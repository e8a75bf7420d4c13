"""The multi-process Python load generator, for calls whose requests must
differ (distinct tokens, refresh chains, one account per login).

Each process runs one grpc.aio channel with its share of the in-flight calls
and sends prepared request bytes (no serialisation in the timed loop). Only
calls that end inside the measured window count, after a warm-up.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from .measure import CpuMeter, RunResult, percentile


class Scenario(Protocol):
    """What one load process sends; built in the parent, prepared in the child."""

    wrapped: int  # requests that had to reuse an input (ran out of prepared ones)

    def prepare(self) -> None: ...
    def request(self, slot: int) -> bytes: ...
    def response(self, slot: int, data: bytes) -> bool:
        """Take the answer; False when it is not the one a success gives."""


@dataclass(frozen=True)
class _Window:
    start: float  # time.monotonic() when the warm-up starts
    warmup: float
    seconds: float


async def _drive(
    target: str, method: str, scenario: Scenario, slots: int, connections: int, window: _Window
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    begin = window.start + window.warmup
    end = begin + window.seconds
    latencies = array("d")
    errors: Counter[str] = Counter()
    cpu: dict[str, float] = {}
    # Each channel its own connection (its own subchannel pool), so that the
    # kernel spreads them over the server's workers.
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, min(connections, slots)))
    ]
    try:
        calls = [ch.unary_unary(method, None, None) for ch in channels]  # bytes in, bytes out
        await asyncio.gather(*(ch.channel_ready() for ch in channels))
        await asyncio.sleep(max(0.0, window.start - time.monotonic()))
        loop.call_later(max(0.0, begin - time.monotonic()), lambda: cpu.setdefault("begin", time.process_time()))
        loop.call_later(max(0.0, end - time.monotonic()), lambda: cpu.setdefault("end", time.process_time()))

        async def one_slot(slot: int) -> None:
            call = calls[slot % len(calls)]
            while True:
                body = scenario.request(slot)
                sent = time.monotonic()
                if sent >= end:
                    return
                try:
                    answer = await call(body, timeout=60)
                except grpc.aio.AioRpcError as exc:
                    if begin <= time.monotonic() < end:
                        errors[exc.code().name] += 1
                    continue
                done = time.monotonic()
                ok = scenario.response(slot, answer)
                if begin <= done < end:
                    if ok:
                        latencies.append(done - sent)
                    else:
                        errors["OK, but a wrong answer"] += 1

        await asyncio.gather(*(one_slot(s) for s in range(slots)))
    finally:
        for ch in channels:
            await ch.close(None)
    return {
        "latencies": latencies.tobytes(),
        "errors": dict(errors),
        "cpu": cpu.get("end", time.process_time()) - cpu.get("begin", 0.0),
        "wrapped": scenario.wrapped,
    }


def _worker(
    target: str, method: str, scenario: Scenario, slots: int, connections: int, ready: Any, start: Any, results: Any
) -> None:
    try:
        scenario.prepare()
        ready.put("ok")
        window: _Window = start.get()
        results.put(asyncio.run(_drive(target, method, scenario, slots, connections, window)))
    except BaseException as exc:
        ready.put(f"error: {exc!r}")
        results.put({"failure": repr(exc)})


def _next_status(ready: Any, workers: list[Any], name: str, timeout: float = 300.0) -> str:
    """The next readiness report; fail fast when a load process died without one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status: str = ready.get(timeout=1.0)
            return status
        except queue.Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"{name}: a load process exited with {dead[0]} while preparing") from None
    raise RuntimeError(f"{name}: the load processes took over {timeout:.0f} s to prepare")


def run(
    name: str,
    port: int,
    method: str,
    scenarios: list[Scenario],
    *,
    concurrency: int,
    connections: int,
    warmup: float,
    seconds: float,
    server_cpu: Callable[[], float],
    loop_cpu: Callable[[], float] | None = None,
    on_window: Callable[[], None] = lambda: None,
) -> RunResult:
    """One process per scenario, ``concurrency`` calls in flight in all;
    ``on_window`` is called when the measured window opens."""
    ctx = mp.get_context("spawn")  # never fork a process that has grpc loaded
    procs = len(scenarios)
    ready, start, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    shares = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(
            target=_worker,
            args=(f"127.0.0.1:{port}", method, sc, n, -(-connections // procs), ready, start, results),
            daemon=True,
        )
        for sc, n in zip(scenarios, shares, strict=True)
    ]
    for w in workers:
        w.start()
    try:
        for _ in workers:
            status = _next_status(ready, workers, name)
            if status != "ok":
                raise RuntimeError(f"{name}: a load process failed to prepare: {status}")
        window = _Window(time.monotonic() + 0.5, warmup, seconds)
        for _ in workers:
            start.put(window)
        meter = CpuMeter(server_cpu, loop_cpu)
        time.sleep(max(0.0, window.start + warmup - time.monotonic()))
        meter.start()
        on_window()
        time.sleep(max(0.0, window.start + warmup + seconds - time.monotonic()))
        cpu = meter.stop()
        parts = []
        for _ in workers:
            try:
                parts.append(results.get(timeout=120))
            except queue.Empty as exc:
                raise RuntimeError(f"{name}: a load process did not report") from exc
    finally:
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
    failures = [p["failure"] for p in parts if "failure" in p]
    if failures:
        raise RuntimeError(f"{name}: load process failed: {failures[0]}")
    latencies = array("d")
    errors: Counter[str] = Counter()
    for p in parts:
        latencies.frombytes(p["latencies"])
        errors.update(p["errors"])
    ordered = sorted(latencies)
    result = RunResult(
        name=name,
        tool=f"Python grpc.aio, {procs} process(es), {connections} connections, {concurrency} in flight",
        rate=len(ordered) / seconds,
        calls=len(ordered) + sum(errors.values()),
        seconds=seconds,
        p50_ms=None if not ordered else 1000 * (percentile(ordered, 0.50) or 0.0),
        p99_ms=None if not ordered else 1000 * (percentile(ordered, 0.99) or 0.0),
        errors=dict(errors),
        server_cpu=cpu,
        loop_cpu=meter.loop,
        machine_cpu=meter.machine,
        postgres_cpu=meter.postgres,
        load_cpu=sum(p["cpu"] for p in parts) / seconds,
    )
    wrapped = sum(p["wrapped"] for p in parts)
    if wrapped:
        result.notes.append(f"{wrapped} requests reused a prepared input (ran out)")
    return result
