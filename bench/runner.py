"""Runs one load against one server, with the right load generator, and
keeps every run for the details table."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import h2load, rpcload
from .measure import RunResult
from .profile import Sampler
from .report import rate
from .rpcload import Scenario
from .scenarios import Cycle
from .servers import ServerProcess
from .settings import BenchConfig


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, cfg: BenchConfig, workdir: Path, results: Path) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.h2load = h2load.available()
        self.sampler = Sampler(cfg.profile, results / "profiles")
        self.runs: list[RunResult] = []
        self.notes: list[str] = []

    @property
    def same_body_tool(self) -> str:
        return "h2load" if self.h2load else "Python load"

    def _sampler(self, name: str, server: ServerProcess) -> Callable[[], None]:
        """What starts py-spy on the server when a measured window opens."""
        label = "".join(c if c.isalnum() else "_" for c in name)
        return lambda: self.sampler.start(label, server.pid, self.cfg.seconds)

    def same_body(self, name: str, server: ServerProcess, method: str, body: bytes, answer_len: int) -> RunResult:
        """Every call the same request: h2load where it is installed."""
        cfg = self.cfg
        say(f"{name} ...")
        on_window = self._sampler(f"{name} {self.same_body_tool}", server)
        try:
            if self.h2load:
                run = h2load.run(
                    name, server.port, method, body, answer_len, concurrency=cfg.concurrency,
                    warmup=cfg.warmup, seconds=cfg.seconds, workdir=self.workdir, server_cpu=server.cpu_seconds,
                    on_window=on_window,
                )  # fmt: skip
            else:
                scenarios: list[Scenario] = [Cycle([body]) for _ in range(cfg.load_procs)]
                run = self._python(name, server, method, scenarios, on_window)
        finally:
            self.sampler.stop()
        self._done(run)
        return run

    def python(self, name: str, server: ServerProcess, method: str, scenarios: list[Scenario]) -> RunResult:
        """Requests that differ per call: the multi-process Python load generator."""
        say(f"{name} ...")
        on_window = self._sampler(f"{name} Python load", server)
        try:
            run = self._python(name, server, method, scenarios, on_window)
        finally:
            self.sampler.stop()
        self._done(run)
        return run

    def _python(
        self, name: str, server: ServerProcess, method: str, scenarios: list[Scenario], on_window: Callable[[], None]
    ) -> RunResult:
        cfg = self.cfg
        return rpcload.run(
            name, server.port, method, scenarios, concurrency=cfg.concurrency, warmup=cfg.warmup,
            seconds=cfg.seconds, server_cpu=server.cpu_seconds, on_window=on_window,
        )  # fmt: skip

    def _done(self, run: RunResult) -> None:
        self.runs.append(run)
        errors = f", {run.error_count} errors" if run.errors else ""
        say(f"  {rate(run.rate)}, p50 {run.p50_ms or 0:.1f} ms, p99 {run.p99_ms or 0:.1f} ms{errors}")

    def shares(self, items: list[str]) -> list[list[str]]:
        """Split per-slot inputs between the load processes as rpcload splits the slots."""
        procs, n = self.cfg.load_procs, self.cfg.concurrency
        sizes = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        out, start = [], 0
        for size in sizes:
            out.append(items[start : start + size])
            start += size
        return out
