"""Runs one load against one server, with the right load generator, and
keeps every run for the details table."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import h2grpc_load, rpcload
from .measure import RunResult
from .profile import Sampler
from .report import rate
from .rpcload import Scenario
from .scenarios import Cycle, Prepared
from .servers import ServerProcess
from .settings import BenchConfig


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, cfg: BenchConfig, workdir: Path, results: Path) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.h2grpc = h2grpc_load.build(workdir)
        self.sampler = Sampler(cfg.profile, results / "profiles")
        self.runs: list[RunResult] = []
        self.notes: list[str] = []

    @property
    def prepared_tool(self) -> str:
        return "h2grpc" if self.h2grpc else "Python load"

    def _on_window(self, name: str, server: ServerProcess, split: list[int]) -> Callable[[], None]:
        """What runs when a measured window opens: note how the connections
        fell on the workers, and start py-spy on the server (BENCH_PROFILE)."""
        label = "".join(c if c.isalnum() else "_" for c in name)

        def opened() -> None:
            split[:] = server.connections_per_worker()
            self.sampler.start(label, server.sampled_pid, self.cfg.seconds)

        return opened

    def prepared(
        self, name: str, server: ServerProcess, method: str, bodies: list[bytes], *, expect: bytes, cycle: bool
    ) -> RunResult:
        """Requests made before the clock starts, sent in order (over and over
        with ``cycle``, else each once): h2grpc where it could be built."""
        cfg = self.cfg
        say(f"{name} ...")
        split: list[int] = []
        on_window = self._on_window(f"{name} {self.prepared_tool}", server, split)
        try:
            if self.h2grpc:
                run = h2grpc_load.run(
                    self.h2grpc, name, server.port, method, bodies, cycle=cycle, expect=expect,
                    connections=cfg.connections, concurrency=cfg.concurrency, warmup=cfg.warmup,
                    seconds=cfg.seconds, workdir=self.workdir, server_cpu=server.cpu_seconds,
                    loop_cpu=server.loop_cpu_seconds, on_window=on_window,
                )  # fmt: skip
            else:
                shares = [bodies[i :: cfg.load_procs] or bodies for i in range(cfg.load_procs)]
                scenarios: list[Scenario] = [
                    Cycle(share, expect) if cycle else Prepared(share, expect) for share in shares
                ]
                run = self._python(name, server, method, scenarios, on_window)
        finally:
            self.sampler.stop()
        run.connections = tuple(split)
        self._done(run)
        return run

    def _python(
        self, name: str, server: ServerProcess, method: str, scenarios: list[Scenario], on_window: Callable[[], None]
    ) -> RunResult:
        cfg = self.cfg
        return rpcload.run(
            name, server.port, method, scenarios, concurrency=cfg.concurrency, connections=cfg.connections,
            warmup=cfg.warmup, seconds=cfg.seconds, server_cpu=server.cpu_seconds,
            loop_cpu=server.loop_cpu_seconds, on_window=on_window,
        )  # fmt: skip

    def _done(self, run: RunResult) -> None:
        self.runs.append(run)
        errors = f", {run.error_count} errors" if run.errors else ""
        say(f"  {rate(run.rate)}, p50 {run.p50_ms or 0:.1f} ms, p99 {run.p99_ms or 0:.1f} ms{errors}")
