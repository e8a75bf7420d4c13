"""What one load run gives, whatever drove it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunResult:
    name: str
    tool: str  # which load generator
    rate: float  # successful calls per second in the measured window
    calls: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    server_cpu: float | None = None  # cores busy in the server process (1.0 = one core)
    loop_cpu: float | None = None  # of which in its workers' event-loop threads (the rest: thread pools, grpc)
    connections: tuple[int, ...] = ()  # connections each worker held when the window opened, largest first
    load_cpu: float | None = None  # cores busy in the load generator
    machine_cpu: float | None = None  # cores busy machine-wide (anything else running shows here)
    postgres_cpu: float | None = None  # cores busy in PostgreSQL (every database on it)
    notes: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return None
    rank = min(len(ordered) - 1, max(0, -(-int(q * 1_000_000) * len(ordered) // 1_000_000) - 1))
    return ordered[rank]


_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every core has spent busy since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    guest = sum(fields[8:10]) if len(fields) >= 10 else 0  # counted in user already
    return (sum(fields) - idle - guest) / _TICK


def postgres_seconds() -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL process, by pid."""
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone already
        name, _, rest = stat.partition(") ")
        if name.endswith("(postgres"):
            fields = rest.split()
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


class CpuMeter:
    """Cores a process (and, given ``loop_seconds``, its event-loop threads),
    PostgreSQL and the whole machine keep busy between start() and stop()."""

    def __init__(self, cpu_seconds: Callable[[], float], loop_seconds: Callable[[], float] | None = None) -> None:
        self._read = cpu_seconds
        self._read_loop = loop_seconds
        self._t0 = self._c0 = self._m0 = self._l0 = 0.0
        self._pg0: dict[int, float] = {}
        self.machine = self.postgres = 0.0
        self.loop: float | None = None

    def start(self) -> None:
        self._pg0 = postgres_seconds()
        self._l0 = self._read_loop() if self._read_loop else 0.0
        self._t0, self._c0, self._m0 = time.monotonic(), self._read(), machine_busy_seconds()

    def stop(self) -> float:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        self.machine = (machine_busy_seconds() - self._m0) / elapsed
        server = (self._read() - self._c0) / elapsed
        if self._read_loop:
            self.loop = (self._read_loop() - self._l0) / elapsed
        pg = postgres_seconds()
        # Backends that started in the window count from zero.
        self.postgres = sum(v - self._pg0.get(pid, 0.0) for pid, v in pg.items()) / elapsed
        return server
