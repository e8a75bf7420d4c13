"""One round: every figure, each right after its ceiling, on one server.

The machine's speed drifts (a shared host), so a ceiling is measured next
to the figures it divides, and the whole round is repeated (BENCH_ROUNDS).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from authsvc.domain.passwords import Argon2Params

from . import argon2_ceiling, local, pgbench
from .database import Principals, SignerSpec
from .measure import RunResult
from .pgbench import PgbenchResult
from .probes import Probe, client_issue_request
from .runner import Runner, say
from .scenarios import ACTIVE, Cycle, Distinct, Logins, RefreshChains, mint, user_grant, verify_request
from .servers import ServerProcess

VERIFY = "/authsvc.v1.AuthService/Verify"
ISSUE = "/authsvc.v1.AuthService/Issue"
REFRESH = "/authsvc.v1.AuthService/Refresh"
REVOKE = "/authsvc.v1.AuthService/Revoke"
EMPTY = "/bench.Empty/Call"
HOT_SET = 16


@dataclass(frozen=True)
class Target:
    server: ServerProcess
    empty: ServerProcess
    probe: Probe
    signer: SignerSpec
    principals: Principals
    jwks: str
    argon2: Argon2Params
    admin_url: str


@dataclass(frozen=True)
class Round:
    empty_h2: RunResult
    empty_py: RunResult
    verify_distinct: RunResult
    verify_hot_py: RunResult
    verify_hot: RunResult
    issue_cc: RunResult
    revoke: RunResult
    local: local.LocalResult
    argon2: float
    cores: int
    issue_pw: RunResult
    pgbench: PgbenchResult
    refresh: RunResult


def _tag(name: str, n: int) -> str:
    return f"{name} [round {n}]"


async def one_round(run: Runner, t: Target, n: int) -> Round:
    cfg, procs = run.cfg, run.cfg.load_procs
    # Ceilings of the RPC figures: the empty RPC, by each load generator.
    empty_h2 = run.same_body(_tag("empty RPC", n), t.empty, EMPTY, b"", 0)  # Empty serialises to no bytes
    empty_py = run.python(_tag("empty RPC", n), t.empty, EMPTY, [Cycle([b""]) for _ in range(procs)])

    # Verify: enough distinct tokens that none repeats (the empty RPC rate bounds it).
    budget = cfg.warmup + cfg.seconds + 2
    per_proc = int(empty_py.rate * 1.3 * budget / procs) + 1000
    verify_distinct = run.python(
        _tag("Verify, distinct tokens", n), t.server, VERIFY,
        [Distinct(t.signer, per_proc, "verify") for _ in range(procs)],
    )  # fmt: skip
    hot = [verify_request(tok) for tok in mint(t.signer, [user_grant() for _ in range(HOT_SET)])]
    verify_len = await t.probe.verify_active(hot[0])
    verify_hot_py = run.python(
        _tag(f"Verify, hot set of {HOT_SET}", n), t.server, VERIFY, [Cycle(hot, ACTIVE) for _ in range(procs)]
    )
    verify_hot = run.same_body(_tag("Verify, one hot token", n), t.server, VERIFY, hot[0], verify_len)

    # Issue with client credentials, then Revoke (access tokens, by jti).
    cc_body = client_issue_request(t.principals)
    cc_len = await t.probe.issue_client(cc_body)
    issue_cc = run.same_body(_tag("Issue, client credentials", n), t.server, ISSUE, cc_body, cc_len)
    per_proc = int(max(issue_cc.rate, 500) * 1.3 * budget / procs) + 500
    revoke = run.python(
        _tag("Revoke, access token", n), t.server, REVOKE,
        [Distinct(t.signer, per_proc, "revoke", t.principals.client_id) for _ in range(procs)],
    )  # fmt: skip

    say("local verification ...")
    loc = await local.run(t.server.port, t.jwks, t.signer, cfg.local_seconds)
    say(f"  cold {loc.cold:,.0f}/s, warm {loc.warm:,.0f}/s, ceiling {loc.ceiling:,.0f}/s")

    say("argon2id ceiling ...")
    argon, cores = argon2_ceiling.run(t.argon2, cfg.seconds)
    say(f"  {argon:.1f} hashes/s on {cores} cores")
    names = list(t.principals.usernames)
    issue_pw = run.python(_tag("Issue, password", n), t.server, ISSUE, [Logins(s) for s in run.shares(names)])

    say("pgbench with Refresh's SQL ...")
    pg = await pgbench.run(t.admin_url, run.workdir, cfg.pgbench_clients, cfg.warmup, cfg.seconds)
    say(f"  {pg.tps:,.0f} tps, {pg.latency_ms:.2f} ms average, {pg.failed} failed")
    # One login per slot starts a refresh chain.
    pairs = await asyncio.gather(*(t.probe.login(u) for u in names[: cfg.concurrency]))
    chains = [p.refresh_token for p in pairs]
    refresh = run.python(_tag("Refresh", n), t.server, REFRESH, [RefreshChains(s) for s in run.shares(chains)])

    return Round(
        empty_h2, empty_py, verify_distinct, verify_hot_py, verify_hot, issue_cc, revoke, loc, argon, cores,
        issue_pw, pg, refresh,
    )  # fmt: skip
