"""``authsvc serve`` with ``AUTHSVC_WORKERS`` > 1: N replicas on one port.

One Python event loop tops out at about one core, so a host with more cores
runs several. Each worker is a whole replica in its own process (event loop,
connection pool, keys, revocation set), bound to the same port with
SO_REUSEPORT so the kernel spreads connections over them; they agree through
the database exactly as replicas on different hosts do. This process only
starts them, replaces one that dies, and passes SIGTERM/SIGINT on.

Spawned, not forked: grpc's core does not survive a fork it was not told of,
and a fresh interpreter per worker keeps that question away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType

from authsvc.config import Settings

log = logging.getLogger(__name__)

#: A worker that dies sooner than this after its start is restarted only
#: after this long, so a crash loop does not spin.
RESTART_BRAKE = 1.0
START_TIMEOUT = 120.0


@dataclass
class Worker:
    """The worker's side: its index and its line to the supervisor."""

    index: int
    line: Connection

    def ready(self, port: int, on_orphaned: Callable[[], None]) -> None:
        """Tell the supervisor we serve; stop when it goes away (its end of the
        line closes), so no worker outlives a killed supervisor."""
        self.line.send(("ready", port))
        loop = asyncio.get_running_loop()
        fd = self.line.fileno()

        def orphaned() -> None:
            loop.remove_reader(fd)
            on_orphaned()

        loop.add_reader(fd, orphaned)


def _run_worker(index: int, database_url: str, line: Connection) -> None:
    """A worker process's entry point (runs in a fresh interpreter)."""
    settings = Settings.from_env(serving=True)  # the environment is inherited
    logging.basicConfig(
        level=settings.log_level, format=f"%(asctime)s %(levelname)s worker {index} %(name)s: %(message)s"
    )
    from authsvc.server import serve  # grpc is imported in workers only

    try:
        asyncio.run(serve(settings, database_url, worker=Worker(index, line)))
    except Exception:
        log.exception("worker %d failed", index)
        sys.exit(1)


@dataclass
class _Slot:
    index: int
    process: SpawnProcess
    line: Connection
    started: float = field(default_factory=time.monotonic)
    port: int | None = None


class _Supervisor:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self._settings = settings
        self._url = database_url
        self._context = multiprocessing.get_context("spawn")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self.status = 0

    def _start(self, index: int) -> _Slot:
        ours, theirs = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_run_worker, args=(index, self._url, theirs), name=f"authsvc-worker-{index}"
        )
        process.start()
        theirs.close()  # so the worker's death reads as EOF here
        return _Slot(index, process, ours)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        slots = [self._start(i) for i in range(self._settings.workers)]
        deadline = time.monotonic() + START_TIMEOUT
        announced = False
        try:
            while not self._stopping:
                pending = [s.line for s in slots if s.port is None]
                timeout = max(0.0, deadline - time.monotonic()) if not announced else None
                wait([self._wake_r, *pending, *(s.process.sentinel for s in slots)], timeout)
                for i, slot in enumerate(slots):
                    self._read_ready(slot)
                    if slot.process.is_alive():
                        continue
                    if not announced:
                        log.error("worker %d did not start (exit code %s)", slot.index, slot.process.exitcode)
                        self.status = 1
                        return self.status
                    log.warning("worker %d exited (code %s); starting another", slot.index, slot.process.exitcode)
                    if time.monotonic() - slot.started < RESTART_BRAKE:
                        time.sleep(RESTART_BRAKE)
                    slot.line.close()
                    slots[i] = self._start(slot.index)
                if not announced and all(s.port is not None for s in slots):
                    announced = True
                    host = self._settings.listen.rpartition(":")[0]
                    log.info("%d workers serving", len(slots))
                    print(f"authsvc listening on {host}:{slots[0].port}", flush=True)
                elif not announced and time.monotonic() > deadline:
                    log.error("workers did not start within %.0f s", START_TIMEOUT)
                    self.status = 1
                    return self.status
            return self.status
        finally:
            self._stop_all(slots)

    def _read_ready(self, slot: _Slot) -> None:
        if slot.port is not None or not slot.line.poll():
            return
        with contextlib.suppress(EOFError, OSError):
            kind, port = slot.line.recv()
            if kind == "ready":
                slot.port = int(port)

    def _stop_all(self, slots: list[_Slot]) -> None:
        """SIGTERM each (each drains like a lone server), then wait; kill what
        outlives its grace."""
        for slot in slots:
            if slot.process.is_alive():
                slot.process.terminate()
        deadline = time.monotonic() + self._settings.shutdown_grace + 5.0
        for slot in slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.warning("worker %d did not stop in time; killing it", slot.index)
                slot.process.kill()
                slot.process.join()
            slot.line.close()


def supervise(settings: Settings, database_url: str) -> int:
    """Run ``settings.workers`` workers until SIGTERM/SIGINT; the exit status."""
    settings.load_kek()  # fail here, once; and make a development key before workers race to
    return _Supervisor(settings, database_url).run()
