"""The table: each figure beside its ceiling, the ratio, the goal."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .measure import RunResult


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    ceiling: str  # what the ceiling is, and its value
    ratio: float | None
    goal: str
    met: bool | None  # None: no goal


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def against(
    figure: str,
    measured: float,
    ceiling_name: str,
    ceiling: float,
    goal: str,
    check: Callable[[float, float], bool] | None,
) -> Row:
    ratio = measured / ceiling if ceiling else None
    met = None if check is None or ratio is None else check(measured, ratio)
    return Row(figure, rate(measured), f"{ceiling_name}: {rate(ceiling)}", ratio, goal, met)


def latency(figure: str, run: RunResult, ceiling: RunResult, goal_ms: float) -> Row:
    return Row(
        figure,
        f"p50 {ms(run.p50_ms)}, p99 {ms(run.p99_ms)}",
        f"{ceiling.name}: p50 {ms(ceiling.p50_ms)}, p99 {ms(ceiling.p99_ms)}",
        None,
        f"p99 < {goal_ms:g} ms",
        run.p99_ms is not None and run.p99_ms < goal_ms,
    )


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**NO**")


def markdown(rows: Sequence[Row]) -> str:
    out = [
        "| figure | measured | ceiling (same run) | ratio | goal | met |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for r in rows:
        # Truncated, not rounded: 0.796 must not print as a goal of 0.80 met.
        ratio = "-" if r.ratio is None else f"{math.floor(r.ratio * 100) / 100:.2f}x"
        out.append(f"| {r.figure} | {r.measured} | {r.ceiling} | {ratio} | {r.goal} | {_verdict(r.met)} |")
    return "\n".join(out)


def details(runs: Sequence[RunResult]) -> str:
    out = [
        "| run | load generator | connections per worker | calls | rate | p50 | p99 | errors | CPU: server"
        " | of it, event loops | Postgres | load | machine |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())) or "0"
        cpu = " | ".join(
            "-" if v is None else f"{v:.2f}"
            for v in (r.server_cpu, r.loop_cpu, r.postgres_cpu, r.load_cpu, r.machine_cpu)
        )
        split = "/".join(str(n) for n in r.connections) or "-"
        out.append(
            f"| {r.name} | {r.tool} | {split} | {r.calls:,} | {rate(r.rate)} | {ms(r.p50_ms)} | {ms(r.p99_ms)}"
            f" | {errors} | {cpu} |"
        )
    return "\n".join(out)


def login_split(runs: Sequence[RunResult], hashes_per_second: float, cores: int) -> str:
    """Where a password login's CPU goes, against one hash of the ceiling:
    what bounds the password ratio on shared cores, whatever the hashing."""
    usable = [r for r in runs if r.rate and None not in (r.server_cpu, r.loop_cpu, r.postgres_cpu, r.machine_cpu)]
    if not usable or not hashes_per_second:
        return "Issue, password, CPU per login: not measured."

    def per_login(pick: Callable[[RunResult], float]) -> float:
        return sum(1000 * pick(r) / r.rate for r in usable) / len(usable)

    machine = per_login(lambda r: r.machine_cpu or 0.0)
    server = per_login(lambda r: r.server_cpu or 0.0)
    loop = per_login(lambda r: r.loop_cpu or 0.0)
    pg = per_login(lambda r: r.postgres_cpu or 0.0)
    load = per_login(lambda r: r.load_cpu or 0.0)
    hashing = server - loop  # the argon2 pool (and grpc's own threads, a few hundredths)
    ceiling_hash = 1000 * cores / hashes_per_second
    rest = machine - hashing
    bound = ceiling_hash / (ceiling_hash + rest)
    return (
        f"Issue, password, CPU per login (mean of the rounds): the server's hashing threads {hashing:.1f} ms "
        f"(the ceiling takes {ceiling_hash:.1f} ms of CPU a hash), its event loops {loop:.1f} ms, PostgreSQL "
        f"{pg:.1f} ms, the load generator {load:.2f} ms, anything else {max(machine - server - pg - load, 0):.1f} "
        f"ms. All but the hashing takes {rest:.1f} ms a login on the same cores, so even hashing at the "
        f"ceiling's speed they allow at most {bound:.2f}x of the ceiling; 0.9x needs that under "
        f"{ceiling_hash / 9:.1f} ms."
    )
