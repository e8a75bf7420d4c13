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
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType

from authsvc import logs
from authsvc.config import ConfigError, Settings
from authsvc.errors import DatabaseUnreachable

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0
#: A worker that dies within this long of its start waits this long before
#: it is replaced, so a crash loop does not spin.
RESTART_BRAKE = 1.0
#: A worker that dies before it ever served is retried with a growing wait
#: (1, 2, 4 ... s); after this many such deaths in a row the supervisor
#: gives up, so that whatever runs it sees the failure.
MAX_FAILED_STARTS = 5
EXIT_CONFIG = 2  # as the CLI's "bad setting"


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
    # Ctrl-C reaches every process of the group; the supervisor passes it on
    # as SIGTERM, once, and a worker still starting must not die mid-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = Settings.from_env(serving=True)  # the environment is inherited
    logs.configure(settings.log_level, settings.log_format, worker=index)
    from authsvc.server import serve

    try:
        asyncio.run(serve(settings, database_url, worker=Worker(index, line)))
    except ConfigError as exc:
        log.error("bad setting: %s", exc)
        sys.exit(EXIT_CONFIG)
    except DatabaseUnreachable as exc:
        log.error("AUTHSVC_DATABASE_URL: %s", exc.detail)
        sys.exit(EXIT_CONFIG)
    except Exception:
        log.exception("worker %d failed", index)
        sys.exit(1)


def check_port_free(listen: str) -> None:
    """Refuse a port something already listens on. Workers set SO_REUSEPORT,
    so a second ``authsvc serve`` (an old one still running) would otherwise
    join the first and take part of its connections."""
    host, _, port = listen.rpartition(":")
    try:
        addresses = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ConfigError(f"AUTHSVC_LISTEN: cannot resolve {listen}") from exc
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As a server binds: connections of a previous run still in
            # TIME_WAIT do not hold the port, a listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ConfigError(f"AUTHSVC_LISTEN: cannot listen on {listen} ({exc.strerror})") from exc


@dataclass
class _Slot:
    index: int
    process: SpawnProcess
    line: Connection
    started: float = field(default_factory=time.monotonic)
    port: int | None = None
    failed_starts: int = 0  # deaths in a row before serving
    restart_at: float | None = None  # dead, to be replaced at this time


class _Supervisor:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self._settings = settings
        self._url = database_url
        self._context = multiprocessing.get_context("spawn")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self._slots: list[_Slot] = []

    def _spawn(self, index: int, failed_starts: int = 0) -> _Slot:
        ours, theirs = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_run_worker, args=(index, self._url, theirs), name=f"authsvc-worker-{index}"
        )
        process.start()
        theirs.close()  # so the worker's death reads as EOF here
        return _Slot(index, process, ours, failed_starts=failed_starts)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        try:
            for i in range(self._settings.workers):
                self._slots.append(self._spawn(i))
            return self._supervise()
        finally:
            self._stop_all()

    def _supervise(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        announced = False
        while not self._stopping:
            wait([self._wake_r, *self._waitables()], self._timeout(None if announced else deadline))
            if self._stopping:
                break
            now = time.monotonic()
            for i, slot in enumerate(self._slots):
                self._read_ready(slot)
                if slot.restart_at is not None:
                    if now >= slot.restart_at:
                        self._slots[i] = self._spawn(slot.index, slot.failed_starts)
                    continue
                if slot.process.is_alive():
                    continue
                code = slot.process.exitcode
                slot.line.close()
                if not announced:
                    log.error("worker %d did not start (exit code %s)", slot.index, code)
                    return EXIT_CONFIG if code == EXIT_CONFIG else 1
                slot.failed_starts = 0 if slot.port is not None else slot.failed_starts + 1
                if slot.failed_starts >= MAX_FAILED_STARTS:
                    log.error("worker %d failed to start %d times in a row; giving up", slot.index, MAX_FAILED_STARTS)
                    return 1
                delay = 2.0 ** (slot.failed_starts - 1) if slot.failed_starts else 0.0
                if now - slot.started < RESTART_BRAKE:
                    delay = max(delay, RESTART_BRAKE)
                log.warning("worker %d exited (code %s); replacing it in %.0f s", slot.index, code, delay)
                slot.restart_at = now + delay
            if not announced and all(s.port is not None for s in self._slots):
                announced = True
                host = self._settings.listen.rpartition(":")[0]
                log.info("%d workers serving", len(self._slots))
                print(f"authsvc listening on {host}:{self._slots[0].port}", flush=True)
            elif not announced and time.monotonic() > deadline:
                log.error("workers did not start within %.0f s", START_TIMEOUT)
                return 1
        return 0

    def _waitables(self) -> list[Connection | int]:
        live = [s for s in self._slots if s.restart_at is None]
        return [*(s.line for s in live if s.port is None), *(s.process.sentinel for s in live)]

    def _timeout(self, deadline: float | None) -> float | None:
        """Until the next replacement is due (or the start-up deadline)."""
        due = [s.restart_at for s in self._slots if s.restart_at is not None]
        if deadline is not None:
            due.append(deadline)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _read_ready(self, slot: _Slot) -> None:
        if slot.port is not None or slot.restart_at is not None or not slot.line.poll():
            return
        with contextlib.suppress(EOFError, OSError):
            kind, port = slot.line.recv()
            if kind == "ready":
                slot.port = int(port)
                slot.failed_starts = 0

    def _stop_all(self) -> None:
        """SIGTERM each (each drains like a lone server), then wait; kill what
        outlives its grace."""
        live = [s for s in self._slots if s.restart_at is None]
        for slot in live:
            if slot.process.is_alive():
                slot.process.terminate()
        deadline = time.monotonic() + self._settings.shutdown_grace + 5.0
        for slot in live:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.warning("worker %d did not stop in time; killing it", slot.index)
                slot.process.kill()
                slot.process.join()
            slot.line.close()


def supervise(settings: Settings, database_url: str) -> int:
    """Run ``settings.workers`` workers until SIGTERM/SIGINT; the exit status."""
    settings.load_kek()  # fail here, once; and make a development key before workers race to
    check_port_free(settings.listen)
    return _Supervisor(settings, database_url).run()
