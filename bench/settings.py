"""What a bench run measures for how long, from BENCH_* variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError as exc:
        raise SystemExit(f"bench: {name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise SystemExit(f"bench: {name} must be positive")
    return value


@dataclass(frozen=True)
class BenchConfig:
    rounds: int  # every figure and its ceiling this many times (the host's speed drifts)
    seconds: float  # measured window of every RPC run
    warmup: float  # discarded before each window
    local_seconds: float  # each in-process (local verify, argon2) run
    concurrency: int  # calls in flight, for every RPC figure
    load_procs: int  # Python load generator processes
    workers: int  # AUTHSVC_WORKERS of the server under test, and of the empty-RPC ceiling
    connections: int  # connections every load generator spreads its calls over
    admin_url: str  # a Postgres where we may CREATE and DROP DATABASE
    revocations: int  # the memory figure's revocation count
    pgbench_clients: int  # pgbench connections: authsvc's database connections, all workers
    profile: bool  # py-spy the server during each RPC run (slower, figures disturbed)

    @classmethod
    def from_env(cls) -> BenchConfig:
        cores = os.cpu_count() or 1
        return cls(
            rounds=int(_number("BENCH_ROUNDS", 3)),
            seconds=_number("BENCH_SECONDS", 5.0),
            warmup=_number("BENCH_WARMUP", 1.0),
            local_seconds=_number("BENCH_LOCAL_SECONDS", 2.0),
            concurrency=int(_number("BENCH_CONCURRENCY", 64)),
            # The server's event loop takes one core; the load gets the rest.
            load_procs=int(_number("BENCH_LOAD_PROCS", max(1, cores // 2))),
            # One event loop per core, as a deployment on this host would run.
            workers=int(_number("BENCH_WORKERS", cores)),
            # The kernel hands each connection to one worker (SO_REUSEPORT):
            # enough of them that every worker gets a fair share.
            connections=int(_number("BENCH_CONNECTIONS", 16)),
            admin_url=os.environ.get("BENCH_DATABASE_URL") or LOCAL_ADMIN_URL,
            revocations=int(_number("BENCH_REVOCATIONS", 100_000)),
            pgbench_clients=int(_number("BENCH_PGBENCH_CLIENTS", 16)),
            profile=os.environ.get("BENCH_PROFILE", "") not in ("", "0", "false"),
        )
