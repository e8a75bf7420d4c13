"""``python -m bench``: every figure beside its ceiling, printed and written
to bench/results/latest.md."""

from __future__ import annotations

import asyncio
import base64
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from authsvc.config import Settings

from . import memory
from .database import create_database, drop_database, load_signer, populate
from .measure import RunResult, machine_busy_seconds
from .probes import Probe
from .report import Row, against, details, latency, login_split, markdown, mb
from .rounds import HOT_SET, REVOKE, Round, Target, one_round
from .runner import Runner, say
from .scenarios import REVOKED_ONE, client_grant, mint, revoke_request
from .servers import authsvc_env, start_authsvc, start_empty
from .settings import BenchConfig

RESULTS = Path(__file__).parent / "results"
IDLE_BUSY_LIMIT = 0.25  # cores busy before we start: more means something else is running


def _idle_check(seconds: float = 2.0) -> float:
    """Cores busy machine-wide while the bench itself does nothing."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def _combine(runs: list[RunResult]) -> RunResult:
    """Rounds of one figure: the mean rate; the worse p50 and p99."""
    first = runs[0]
    return RunResult(
        name=first.name.split(" [")[0], tool=first.tool, rate=statistics.fmean(r.rate for r in runs),
        calls=sum(r.calls for r in runs), seconds=sum(r.seconds for r in runs),
        p50_ms=max((r.p50_ms or 0.0) for r in runs), p99_ms=max((r.p99_ms or 0.0) for r in runs),
    )  # fmt: skip


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


async def measure(cfg: BenchConfig, run: Runner) -> list[Row]:
    kek = "bench:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    url = await create_database(cfg.admin_url, "authsvc_bench")
    settings = Settings.from_env(authsvc_env(url, kek))
    issuer, ttl = settings.policy.issuer, settings.policy.access_ttl
    rounds: list[Round] = []
    try:
        say(f"scratch database {url.rsplit('/', 1)[1]}: {cfg.concurrency} users, one client")
        principals = await populate(url, settings.argon2, users=cfg.concurrency)
        empty = start_empty(run.workdir, cfg.workers)
        server = start_authsvc(url, kek, run.workdir, cfg.workers)
        probe = Probe(server.port)
        try:
            signer = await load_signer(url, kek, issuer, ttl)
            target = Target(
                server, empty, probe, signer, principals, await probe.jwks(), settings.argon2, cfg.admin_url, url
            )
            for n in range(1, cfg.rounds + 1):
                say(f"round {n} of {cfg.rounds}")
                rounds.append(await one_round(run, target, n))
        finally:
            await probe.close()
            server.stop()
            empty.stop()
    finally:
        await drop_database(cfg.admin_url, url)

    say(f"memory: a fresh server, then {cfg.revocations:,} revocations ...")
    phase = await memory.run(cfg.admin_url, kek, settings.argon2, run.workdir, cfg.revocations, issuer, ttl)
    mem = phase.result
    try:
        say(f"  RSS {mb(mem.rest_bytes)} at rest, {mb(mem.grown_bytes)} grown, {mb(mem.restart_rest_bytes)} restarted")
        tokens = mint(phase.signer, [client_grant(phase.principals.client_id) for _ in range(3000 * 8)])
        revoke_loaded = run.prepared(
            f"Revoke, {cfg.revocations:,} revocations in memory (1 worker)", phase.server, REVOKE,
            [revoke_request(t) for t in tokens], expect=REVOKED_ONE, cycle=False,
        )  # fmt: skip
    finally:
        phase.server.stop()
        await drop_database(cfg.admin_url, phase.url)

    def pick(field: str) -> RunResult:
        return _combine([getattr(r, field) for r in rounds])

    # Each round's ceiling ran before and after its Verify figures.
    empty_rpc = _combine([r.empty for r in rounds] + [r.empty_after for r in rounds])
    v_distinct, v_hot, v_one = pick("verify_distinct"), pick("verify_hot"), pick("verify_one")
    check_hot = pick("check_hot")
    issue_cc, issue_pw, refresh, revoke = pick("issue_cc"), pick("issue_pw"), pick("refresh"), pick("revoke")
    exchange, txn_local = pick("exchange"), _mean([r.txn_local for r in rounds])
    cold, warm = _mean([r.local.cold for r in rounds]), _mean([r.local.warm for r in rounds])
    bare = _mean([r.local.ceiling for r in rounds])
    argon, cores = _mean([r.argon2 for r in rounds]), rounds[0].cores
    argon_reference = _mean([r.argon2_reference for r in rounds])
    hashed_by = "libsodium" if settings.argon2.parallelism == 1 else "argon2-cffi"  # see passwords.py
    tps = _mean([r.pgbench.tps for r in rounds])
    revoke_tps = _mean([r.pgbench_revoke.tps for r in rounds])
    tool = run.prepared_tool
    ceiling = f"empty RPC ({tool})"
    grown, restarted = mem.grown_bytes - mem.rest_bytes, mem.restart_rest_bytes - mem.rest_bytes
    rows = [
        against(
            f"Verify RPC, distinct EdDSA tokens ({tool}, {cfg.concurrency} in flight)", v_distinct.rate,
            ceiling, empty_rpc.rate, ">= 0.65x", lambda m, r: r >= 0.65,
        ),
        latency(f"Verify RPC latency, distinct tokens ({tool})", v_distinct, empty_rpc, 20),
        against(
            f"Verify RPC, hot set of {HOT_SET} tokens ({tool})", v_hot.rate, ceiling, empty_rpc.rate,
            ">= 0.85x", lambda m, r: r >= 0.85,
        ),
        latency(f"Verify RPC latency, hot set of {HOT_SET} ({tool})", v_hot, empty_rpc, 20),
        against(
            f"Verify RPC, one hot token ({tool})", v_one.rate, ceiling, empty_rpc.rate,
            ">= 0.85x", lambda m, r: r >= 0.85,
        ),
        against(
            f"Check (Envoy ext_authz), hot set of {HOT_SET} tokens ({tool})", check_hot.rate, ceiling,
            empty_rpc.rate, ">= 0.8x of Verify's hot-set ratio",
            lambda m, r: r >= 0.8 * v_hot.rate / empty_rpc.rate,
        ),
        latency(f"Check latency, hot set of {HOT_SET} ({tool})", check_hot, empty_rpc, 20),
        against(
            "Local verify, cold (signature checked), 1 thread", cold, "bare cryptography verify + b64 + json",
            bare, ">= 0.8x", lambda m, r: r >= 0.8,
        ),
        against(
            "Local verify, warm (same 16 tokens again), 1 thread", warm, "bare cryptography verify + b64 + json",
            bare, "> 200,000/s", lambda m, r: m > 200_000,
        ),
        against(
            "Local verify, Txn-Token (signature checked every time), 1 thread", txn_local,
            "bare cryptography verify + b64 + json", bare, "-", None,
        ),
        against(
            f"Issue, client credentials ({tool})", issue_cc.rate, ceiling, empty_rpc.rate,
            ">= 0.45x", lambda m, r: r >= 0.45,
        ),
        against(
            f"ExchangeToken, delegated access token ({tool})", exchange.rate, ceiling, empty_rpc.rate, "-", None,
        ),
        against(
            f"Issue, password ({tool})", issue_pw.rate, f"argon2id on {cores} cores, as authsvc hashes ({hashed_by})",
            argon, ">= 0.9x", lambda m, r: r >= 0.9,
        ),
        against(
            f"Issue, password ({tool}), beside argon2-cffi", issue_pw.rate,
            f"argon2id on {cores} cores with argon2-cffi (slower code, same hash)", argon_reference, "-", None,
        ),
        against(
            f"Refresh ({tool}, each a session's first refresh)", refresh.rate,
            f"pgbench, Refresh's SQL, {cfg.pgbench_clients} clients", tps,
            ">= 0.40x", lambda m, r: r >= 0.40,
        ),
        against(
            f"Revoke, access token ({tool})", revoke.rate, f"pgbench, Revoke's SQL, {cfg.pgbench_clients} clients",
            revoke_tps, ">= 0.40x", lambda m, r: r >= 0.40,
        ),
        against(
            f"Revoke, access token ({tool}), beside the empty RPC", revoke.rate, ceiling, empty_rpc.rate, "-", None
        ),
        against(
            f"Revoke with {cfg.revocations:,} revocations in memory (1 worker)", revoke_loaded.rate, ceiling,
            empty_rpc.rate, "-", None,
        ),
        Row("Server RSS at rest (fresh server, one Verify served)", mb(mem.rest_bytes), "-", None, "-", None),
        Row(
            f"Server RSS after {mem.count:,} revocations arrived (batches of {memory.BATCH:,})",
            f"{mb(mem.grown_bytes)} (+{mb(grown)})", "-", None, "+100k revocations < 30 MB",
            grown * 100_000 / mem.count < 30e6,
        ),
        Row(
            f"Server RSS, started with {mem.count:,} revocations in the log",
            f"{mb(mem.restart_rest_bytes)} (+{mb(restarted)})", "-", None, "+100k revocations < 30 MB",
            restarted * 100_000 / mem.count < 30e6,
        ),
    ]  # fmt: skip

    def spread(values: list[float]) -> str:
        return ", ".join(f"{v:,.0f}" for v in values)

    run.notes += [
        f"Each figure is the mean of {cfg.rounds} rounds; latencies are the worse round's. Per round, the "
        "empty RPC runs before and after the Verify figures, and the RPC ratios divide by the mean of all its "
        "runs (the Runs table has every sample).",
        "Local verification per round (cold / warm / ceiling): "
        + "; ".join(f"{r.local.cold:,.0f} / {r.local.warm:,.0f} / {r.local.ceiling:,.0f}" for r in rounds)
        + f". {rounds[0].local.note}.",
        f"argon2id per round: {spread([r.argon2 for r in rounds])} hashes/s as authsvc hashes ({hashed_by}), "
        f"{spread([r.argon2_reference for r in rounds])} with argon2-cffi; time_cost={settings.argon2.time_cost}, "
        f"memory={settings.argon2.memory_kib} KiB, parallelism={settings.argon2.parallelism}; one process per core.",
        login_split([r.issue_pw for r in rounds], argon, cores),
        "pgbench per round: "
        + "; ".join(
            f"{r.pgbench.tps:,.0f} tps, {r.pgbench.latency_ms:.2f} ms average, {r.pgbench.failed} failed, "
            f"{r.pgbench.chained:,} of {r.pgbench.transactions:,} spent the token their previous one inserted"
            for r in rounds
        )
        + ".",
        "pgbench with Revoke's SQL per round: "
        + "; ".join(f"{r.pgbench_revoke.tps:,.0f} tps, {r.pgbench_revoke.latency_ms:.2f} ms average" for r in rounds)
        + ".",
        f"Memory: {mem.count:,} revocations (kind jti) arrived in {mem.arrival_seconds:.1f} s "
        f"({mem.count // memory.BATCH} Revoke calls, each after {memory.BATCH - 1:,} rows); RSS per revocation: "
        f"{grown / mem.count:,.0f} bytes as they arrived, {restarted / mem.count:,.0f} bytes loaded at start.",
    ]
    for r in run.runs:
        run.notes += [f"{r.name}: {n}" for n in r.notes]
    return rows


def machine() -> list[str]:
    import grpc

    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    cores = os.cpu_count() or 1
    return [
        f"- Machine: **{cores} cores** ({model}), {platform.system()} {platform.release()}. The load generators, "
        f"the servers and PostgreSQL all share these {cores} cores, so a figure and its ceiling pay the same "
        "load-generation cost.",
        f"- Python {platform.python_version()}, grpcio {grpc.__version__}.",
    ]


def main() -> int:
    cfg = BenchConfig.from_env()
    if shutil.which("pgbench") is None:
        print("bench: pgbench is not installed (Debian: it comes with the server, postgresql-15)", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-") as tmp:
        run = Runner(cfg, Path(tmp), RESULTS)
        if run.h2grpc is None:
            run.notes.append(
                "h2grpc could not be built (gcc and Debian's libnghttp2-dev): the prepared-request runs FELL BACK "
                "to the Python load generator, which takes more of the shared cores and lowers those ceilings."
            )
        busy = _idle_check()
        if busy > IDLE_BUSY_LIMIT:
            run.notes.append(
                f"**The machine was not idle**: {busy:.2f} cores busy before the run started (other processes). "
                "Figures and ceilings both suffer, the ratios less than the rates; the machine CPU column of each "
                "run shows what else ran."
            )
        rows = asyncio.run(measure(cfg, run))
    command = "make bench" if os.environ.get("MAKELEVEL") else "python -m bench"
    knobs = (
        f"BENCH_ROUNDS={cfg.rounds} BENCH_SECONDS={cfg.seconds:g} BENCH_WARMUP={cfg.warmup:g} "
        f"BENCH_LOCAL_SECONDS={cfg.local_seconds:g} BENCH_CONCURRENCY={cfg.concurrency} "
        f"BENCH_LOAD_PROCS={cfg.load_procs} BENCH_WORKERS={cfg.workers} BENCH_CONNECTIONS={cfg.connections} "
        f"BENCH_REVOCATIONS={cfg.revocations}"
    )
    text = "\n".join(
        [
            "# authsvc benchmark",
            "",
            f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; took {time.monotonic() - t0:.0f} s.",
            f"- Command: `{command}` ({knobs}).",
            *machine(),
            f"- Servers: authsvc with AUTHSVC_WORKERS={cfg.workers} (one process per worker, one port), and the "
            f"empty-RPC ceiling in the same process model ({cfg.workers} worker(s)).",
            f"- Load: {run.prepared_tool} (C, nghttp2) with requests prepared before the clock starts, a different "
            f"one per call where the figure needs it. {cfg.connections} connections, {cfg.concurrency} calls in "
            "flight throughout.",
            "- Method: [bench/README.md](../README.md). Ratio = figure / the ceiling beside it.",
            "",
            markdown(rows),
            "",
            "## Runs",
            "",
            "CPU columns: cores busy during the measured window (1.00 = one core); machine = all processes.",
            "",
            details(run.runs),
            "",
            "## Notes",
            "",
            *[f"- {n}" for n in run.notes],
            "",
        ]
    )
    print(text)
    if cfg.profile:  # a profiled run's figures are disturbed: keep the last clean table
        say(f"profiles in {RESULTS / 'profiles'}; latest.md left as it was")
    else:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.md").write_text(text)
        say(f"written to {RESULTS / 'latest.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
