"""One round: every figure, each right after its ceiling, on one server.

The machine's speed drifts (a shared host), so a ceiling is measured next
to the figures it divides, and the whole round is repeated (BENCH_ROUNDS).
"""

from __future__ import annotations

from dataclasses import dataclass

from authsvc.domain.identity.passwords import Argon2Params

from . import argon2_ceiling, local, pgbench
from .database import Principals, SignerSpec, open_sessions
from .measure import RunResult
from .pgbench import PgbenchResult
from .probes import Probe, client_issue_request
from .runner import Runner, say
from .scenarios import (
    ACTIVE,
    CHECK_ALLOWED,
    ISSUED,
    REVOKED_ONE,
    TOKENS,
    check_request,
    client_grant,
    exchange_request,
    login_request,
    mint,
    refresh_request,
    revoke_request,
    user_grant,
    verify_request,
)
from .servers import ServerProcess

VERIFY = "/authsvc.v1.AuthService/Verify"
CHECK = "/envoy.service.auth.v3.Authorization/Check"
ISSUE = "/authsvc.v1.AuthService/Issue"
REFRESH = "/authsvc.v1.AuthService/Refresh"
REVOKE = "/authsvc.v1.AuthService/Revoke"
EXCHANGE = "/authsvc.v1.AuthService/ExchangeToken"
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
    url: str  # the scratch database the server runs on


@dataclass(frozen=True)
class Round:
    empty: RunResult  # the ceiling, before the Verify figures
    empty_after: RunResult  # and again after them: the host's speed drifts
    verify_distinct: RunResult
    verify_hot: RunResult
    verify_one: RunResult
    check_hot: RunResult  # Envoy's ext_authz Check over the same hot set
    issue_cc: RunResult
    revoke: RunResult
    local: local.LocalResult
    argon2: float  # authsvc's own hashing (libsodium)
    argon2_reference: float  # argon2-cffi, the same hash
    cores: int
    issue_pw: RunResult
    pgbench: PgbenchResult
    refresh: RunResult
    pgbench_revoke: PgbenchResult  # Revoke's own statement: the Revoke row's ceiling
    exchange: RunResult  # ExchangeToken: one service token for a delegated one (RFC 8693)
    txn_local: float  # local Txn-Token verifications per second (TokenVerifier.verify_txn)


def _tag(name: str, n: int) -> str:
    return f"{name} [round {n}]"


async def one_round(run: Runner, t: Target, n: int) -> Round:
    cfg = run.cfg
    # The ceiling of the RPC figures: the empty RPC, same process model, same load generator.
    empty = run.prepared(_tag("empty RPC", n), t.empty, EMPTY, [b""], expect=b"", cycle=True)

    # Verify: enough distinct tokens that none repeats (the empty RPC's rate bounds Verify's).
    budget = cfg.warmup + cfg.seconds + 1
    say(f"minting tokens for {int(empty.rate * 0.8 * budget):,} distinct Verify calls ...")
    tokens = mint(t.signer, [user_grant() for _ in range(int(empty.rate * 0.8 * budget) + 2000)])
    verify_distinct = run.prepared(
        _tag("Verify, distinct tokens", n), t.server, VERIFY, [verify_request(tok) for tok in tokens],
        expect=ACTIVE, cycle=False,
    )  # fmt: skip
    hot = [verify_request(tok) for tok in tokens[:HOT_SET]]
    await t.probe.verify_active(hot[0])
    verify_hot = run.prepared(
        _tag(f"Verify, hot set of {HOT_SET}", n), t.server, VERIFY, hot, expect=ACTIVE, cycle=True
    )
    verify_one = run.prepared(
        _tag("Verify, one hot token", n), t.server, VERIFY, hot[:1], expect=ACTIVE, cycle=True
    )
    # Envoy's Check over the same tokens: what a request behind Envoy costs.
    checks = [check_request(tok) for tok in tokens[:HOT_SET]]
    check_hot = run.prepared(
        _tag(f"Check (Envoy ext_authz), hot set of {HOT_SET}", n), t.server, CHECK, checks,
        expect=CHECK_ALLOWED, cycle=True,
    )  # fmt: skip
    # The ceiling again: the Verify and Check figures sit between two of its runs.
    empty_after = run.prepared(_tag("empty RPC, again", n), t.empty, EMPTY, [b""], expect=b"", cycle=True)

    # Issue with client credentials, then Revoke (access tokens, by jti).
    cc_body = client_issue_request(t.principals)
    await t.probe.issue_client(cc_body)
    issue_cc = run.prepared(_tag("Issue, client credentials", n), t.server, ISSUE, [cc_body], expect=TOKENS, cycle=True)
    # ExchangeToken beside Issue: the same client trades one token of its own for
    # a delegated one (verify the subject token, check the policy, mint).
    subject = mint(t.signer, [client_grant(t.principals.client_id)])[0]
    exchange_body = exchange_request(t.principals.client_id, t.principals.client_secret, subject)
    exchange = run.prepared(
        _tag("ExchangeToken, delegated access token", n), t.server, EXCHANGE, [exchange_body], expect=ISSUED,
        cycle=True,
    )  # fmt: skip
    count = int(max(issue_cc.rate, 500) * 1.3 * budget) + 500
    revocable = mint(t.signer, [client_grant(t.principals.client_id) for _ in range(count)])
    revoke = run.prepared(
        _tag("Revoke, access token", n), t.server, REVOKE, [revoke_request(tok) for tok in revocable],
        expect=REVOKED_ONE, cycle=False,
    )  # fmt: skip

    say("local verification ...")
    loc = await local.run(t.server.port, t.jwks, t.signer, cfg.local_seconds)
    say(f"  cold {loc.cold:,.0f}/s, warm {loc.warm:,.0f}/s, ceiling {loc.ceiling:,.0f}/s")
    txn_local = await local.run_txn(t.server.port, t.signer, t.principals, cfg.local_seconds)
    say(f"  Txn-Tokens {txn_local:,.0f}/s")

    say("argon2id ceiling ...")
    argon, cores = argon2_ceiling.run(t.argon2, cfg.seconds)
    reference, _ = argon2_ceiling.run(t.argon2, cfg.seconds, argon2_ceiling.REFERENCE)
    say(f"  {argon:.1f} hashes/s on {cores} cores ({reference:.1f} with argon2-cffi)")
    # One account per call in flight: in order, so the calls in flight name different accounts.
    names = list(t.principals.usernames)
    issue_pw = run.prepared(
        _tag("Issue, password", n), t.server, ISSUE, [login_request(u) for u in names], expect=TOKENS, cycle=True
    )

    say("pgbench with Refresh's SQL ...")
    pg = await pgbench.run(t.admin_url, run.workdir, cfg.pgbench_clients, cfg.warmup, cfg.seconds)
    say(f"  {pg.tps:,.0f} tps, {pg.latency_ms:.2f} ms average, {pg.failed} failed")
    # Sessions as logins leave them, each refreshed once: many users, as in
    # production, and every request made before the clock starts.
    count = int(max(2000.0, issue_cc.rate) * 1.5 * budget)  # Refresh writes more than Issue does
    say(f"opening {count:,} sessions for Refresh ...")
    tokens = await open_sessions(t.url, t.principals.usernames, count)
    refresh = run.prepared(
        _tag("Refresh", n), t.server, REFRESH, [refresh_request(tok) for tok in tokens], expect=TOKENS, cycle=False
    )

    say("pgbench with Revoke's SQL ...")
    pg_revoke = await pgbench.run_revoke(t.admin_url, run.workdir, cfg.pgbench_clients, cfg.warmup, cfg.seconds)
    say(f"  {pg_revoke.tps:,.0f} tps, {pg_revoke.latency_ms:.2f} ms average, {pg_revoke.failed} failed")

    return Round(
        empty, empty_after, verify_distinct, verify_hot, verify_one, check_hot, issue_cc, revoke, loc, argon,
        reference, cores, issue_pw, pg, refresh, pg_revoke, exchange, txn_local,
    )  # fmt: skip
