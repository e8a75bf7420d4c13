"""Patroni failovers under a steady mixed load on three authsvc replicas.

Five and more times the primary's postmaster is SIGKILLed mid-load (the two
nodes take turns) and Patroni promotes the synchronous standby, then brings
the old primary back as a standby (pg_rewind) before the next round. Then a
long outage (Patroni paused, so no one takes over) for Verify's staleness
bound, and a planned switchover driven through the client package's retries.

What must hold, from the client's record (load.py) and the database's rows:
every call answered OK is in the new primary; no session is half rotated;
a revoked token stays refused everywhere; writes answer OK or UNAVAILABLE,
never INTERNAL; health says NOT_SERVING during a failover; Verify answers
from memory until its staleness bound, then fails closed; everything comes
back by itself. The figures (unavailability window, errors by status code)
are printed and written to $AUTHSVC_HA_REPORT when set."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest

from authsvc_client import (
    AsyncAuthClient,
    AuthsvcError,
    ClientCredential,
    PasswordCredential,
    Requirements,
    RetryPolicy,
    TokenPair,
)

from .cluster import Cluster
from .conftest import STALENESS, System
from .load import AUDIENCE, WRITES, Load

pytestmark = [pytest.mark.ha, pytest.mark.timeout(1500)]

T = TypeVar("T")
CRASHES = 6  # rounds of SIGKILL; the two nodes take turns as the victim
RECOVERY = 90.0  # seconds for a round to recover on its own; measured windows are a few seconds
SLACK = 1.5  # seconds of scheduling noise allowed around the staleness bound on a shared machine
NEVER = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}


async def eventually(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``probe`` (sync, or async) until it gives something truthy, for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(interval)


async def new_leader(cluster: Cluster, old: str) -> Any:
    leader = await asyncio.to_thread(cluster.leader)
    return leader if leader is not None and leader.name != old else None


def first_ok_write(load: Load, replica: int, since: float) -> float | None:
    ends = [
        c.end
        for c in load.record.calls
        if c.code == "OK" and c.op in WRITES and c.replica == replica and c.start >= since
    ]
    return min(ends) if ends else None


async def recover(system: System, load: Load, since: float) -> float:
    """Wait until writes work on every replica, every one says SERVING and the
    old primary streams again in sync; give the round's unavailability window."""
    replicas = range(len(system.addresses))
    await eventually(
        lambda: all(first_ok_write(load, r, since) for r in replicas), RECOVERY, "writes work again on every replica"
    )
    await eventually(lambda: all(load.status(r) == "SERVING" for r in replicas), RECOVERY, "every replica SERVING")
    await asyncio.to_thread(system.cluster.wait_ready, RECOVERY)
    return unavailable_for(load, since, time.monotonic())


def unavailable_for(load: Load, since: float, until: float) -> float:
    """From the start of the first write that failed to the end of the last
    one (0 when none failed): how long writes were refused."""
    failed = [c for c in load.record.calls if c.op in WRITES and c.code != "OK" and since <= c.start <= until]
    return max(c.end for c in failed) - min(c.start for c in failed) if failed else 0.0


def check_round(load: Load, replicas: int, since: float, until: float, name: str) -> dict[str, Any]:
    """The round's figures; asserts what must hold in every failover."""
    record = load.record
    writes = record.codes(since, until, WRITES)
    assert set(writes) <= {"OK", "UNAVAILABLE"}, f"{name}: writes answered {dict(writes)}"
    everything = record.codes(since, until)
    assert not set(everything) & NEVER, f"{name}: {dict(everything)}"
    for r in range(replicas):
        seen = record.health_at(r, since, until)
        assert "NOT_SERVING" in seen, f"{name}: replica {r} never said NOT_SERVING: {seen}"
        # Verify answers from memory within the bound: no fail-closed before it.
        early = [
            c.start - since
            for c in record.calls
            if c.replica == r
            and c.op == "verify"
            and c.code == "UNAVAILABLE"
            and since <= c.start < since + STALENESS - SLACK
        ]
        assert not early, (
            f"{name}: replica {r}'s Verify failed closed {early[0]:.2f}s in, before its {STALENESS}s bound"
        )
    verify = record.codes(since, until, ("verify",))
    return {
        "errors": {k: v for k, v in everything.items() if k != "OK"},
        "writes": dict(writes),
        "verify": dict(verify),
    }


async def test_failovers_under_load(system: System, capsys: pytest.CaptureFixture[str]) -> None:
    cluster, replicas = system.cluster, len(system.addresses)
    load = Load(system.addresses, system.users, system.client)
    await load.start()
    report: dict[str, Any] = {"crashes": [], "switchover": {}, "long_outage": {}}
    try:
        # --- crashes --------------------------------------------------------------------
        victims = []
        for n in range(CRASHES):
            leader, _standby = await asyncio.to_thread(cluster.wait_ready, RECOVERY)
            steady = time.monotonic()
            await eventually(functools.partial(load.wrote_ok_everywhere, steady), 60, "steady load")
            killed = time.monotonic()
            await asyncio.to_thread(cluster.kill_postmaster, leader)
            promoted = await eventually(
                functools.partial(new_leader, cluster, leader.name), RECOVERY, "Patroni promotes the standby"
            )
            promoted_after = time.monotonic() - killed
            window = await recover(system, load, killed)
            figures = check_round(load, replicas, killed, time.monotonic(), f"crash {n + 1}")
            figures |= {"killed": leader.name, "promoted": promoted.name, "window_s": round(window, 2),
                        "promoted_after_s": round(promoted_after, 2)}  # fmt: skip
            report["crashes"].append(figures)
            victims.append(leader.name)
        assert len(set(victims)) == 2 and all(a != b for a, b in itertools.pairwise(victims)), victims

        # --- a long outage: no one takes over (Patroni paused) -------------------------
        report["long_outage"] = await long_outage(system, load)

        # --- a planned switchover, through the client package's retries ----------------
        report["switchover"] = await switchover(system, load)

        await load.stop_writers()
        await consistent(system, load)
    finally:
        await load.stop()
    windows = [c["window_s"] for c in report["crashes"]]
    totals: Counter[str] = Counter()
    for c in report["crashes"]:
        totals.update(c["errors"])
    report["summary"] = {
        "window_p50_s": round(statistics.median(windows), 2),
        "window_max_s": max(windows),
        "errors_by_code": dict(totals),
        "calls": len(load.record.calls),
        "acknowledged": {
            "logins": len(load.record.chains),
            "refreshes": len(load.record.refreshes),
            "revokes": len(load.record.revoked),
        },
    }
    text = json.dumps(report, indent=1)
    if os.environ.get("AUTHSVC_HA_REPORT"):
        with open(os.environ["AUTHSVC_HA_REPORT"], "w") as fh:
            fh.write(text)
    with capsys.disabled():
        print("\nHA report:\n" + text)


async def long_outage(system: System, load: Load) -> dict[str, Any]:
    """Kill the primary with Patroni paused, so no one takes over: Verify keeps
    answering from memory for its staleness bound, then fails closed on every
    replica; writes answer UNAVAILABLE. Resumed, Patroni recovers the cluster."""
    cluster, replicas = system.cluster, range(len(system.addresses))
    leader, _ = await asyncio.to_thread(cluster.wait_ready, RECOVERY)
    await asyncio.to_thread(cluster.set_paused, True)
    try:
        killed = time.monotonic()
        await asyncio.to_thread(cluster.kill_postmaster, leader)

        def closed(r: int) -> float | None:
            starts = [
                c.start
                for c in load.record.calls
                if c.replica == r and c.op == "verify" and c.code == "UNAVAILABLE" and c.start > killed
            ]
            return min(starts) if starts else None

        await eventually(
            lambda: all(closed(r) for r in replicas), STALENESS + 60, "Verify fails closed on every replica"
        )
        failed_closed_after = {}
        for r in replicas:
            went_down = min(t for t, s in load.record.transitions(r, killed, time.monotonic()) if s == "NOT_SERVING")
            answered = [
                c for c in load.record.calls
                if c.replica == r and c.op == "verify" and c.detail == "active" and went_down < c.start
            ]  # fmt: skip
            assert answered, f"replica {r}: Verify did not answer from memory while the database was gone"
            after = (closed(r) or 0.0) - killed
            assert after >= STALENESS - SLACK, (
                f"replica {r} failed closed {after:.2f}s in, before its {STALENESS}s bound"
            )
            failed_closed_after[r] = round(after, 2)
        down = time.monotonic()
    finally:
        await asyncio.to_thread(cluster.set_paused, False)
    window = await recover(system, load, killed)
    codes = load.record.codes(killed, time.monotonic(), WRITES)
    assert set(codes) <= {"OK", "UNAVAILABLE"}, dict(codes)
    return {"verify_failed_closed_after_s": failed_closed_after, "outage_s": round(down - killed, 2),
            "window_s": round(window, 2), "writes": dict(codes)}  # fmt: skip


async def switchover(system: System, load: Load) -> dict[str, Any]:
    """`patronictl switchover` while clients of the client package refresh,
    revoke, verify and get service tokens: its retries on UNAVAILABLE absorb
    the switch, so none of those calls fails. Password logins are not retried
    by the client (a guess must not be spent twice); their answers are counted."""
    cluster = system.cluster
    leader, standby = await asyncio.to_thread(cluster.wait_ready, RECOVERY)
    retry = RetryPolicy(max_attempts=20, initial_backoff=0.1, max_backoff=1.0)
    failures: Counter[str] = Counter()
    done: Counter[str] = Counter()
    stop = asyncio.Event()

    async def client_worker(address: str, n: int) -> None:
        async with AsyncAuthClient(grpc.aio.insecure_channel(address), retry=retry, timeout=30.0) as client:
            user = system.users[n]
            while not stop.is_set():
                try:
                    pair = await client.issue(PasswordCredential(user[0], user[1]))
                    assert isinstance(pair, TokenPair)
                except AuthsvcError as exc:
                    failures["login (not retried) " + exc.code.name] += 1
                    await asyncio.sleep(0.05)
                    continue
                try:
                    pair = await client.refresh(pair.refresh_token)
                    done["refresh"] += 1
                    await client.verify(pair.access_token, Requirements(audience=AUDIENCE))
                    done["verify"] += 1
                    await client.issue(ClientCredential(*system.client))
                    done["issue_client"] += 1
                    await client.revoke(pair.access_token)
                    done["revoke"] += 1
                except AuthsvcError as exc:
                    failures[f"after {sum(done.values())} calls: {exc.code.name}"] += 1
                await asyncio.sleep(0.02)

    workers = [asyncio.create_task(client_worker(a, 90 + i)) for i, a in enumerate(system.addresses)]
    try:
        await eventually(lambda: done["revoke"] >= 3, 60, "the client load runs")
        started = time.monotonic()
        await asyncio.to_thread(
            cluster.patronictl,
            "switchover",
            cluster.scope,
            "--leader",
            leader.name,
            "--candidate",
            standby.name,
            "--force",
        )
        await eventually(lambda: new_leader(cluster, leader.name), RECOVERY, "the candidate leads")
        window = await recover(system, load, started)
        before = sum(done.values())
        await eventually(lambda: sum(done.values()) > before + 10, 60, "client calls after the switchover")
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
    retried = {k: v for k, v in failures.items() if not k.startswith("login")}
    assert not retried, f"calls the client retries failed anyway: {retried}"
    raw = load.record.codes(started, time.monotonic(), WRITES)
    assert set(raw) <= {"OK", "UNAVAILABLE"}, dict(raw)
    return {"window_s": round(window, 2), "client_calls_ok": dict(done), "client_failures": dict(failures),
            "raw_writes": dict(raw), "retry": repr(retry)}  # fmt: skip


async def consistent(system: System, load: Load) -> None:
    """The client's acknowledgements against the rows of the primary now."""
    record = load.record
    replicas = range(len(system.addresses))
    # Every acknowledged revoke reached every replica's watchers...
    await eventually(
        lambda: all(set(record.revoked) <= record.watched.get(r, set()) for r in replicas),
        60, "every acknowledged revoke on every replica's WatchRevocations stream",
    )  # fmt: skip
    # ...and every replica refuses every revoked token.
    assert not record.violations, record.violations[:5]
    for r in replicas:
        for jti, (token, _acked) in record.revoked.items():
            resp = await load.stubs[r].Verify(load_verify(token), timeout=10)
            assert not resp.active, f"replica {r} accepts revoked {jti}"
    leader, _ = await asyncio.to_thread(system.cluster.wait_ready, RECOVERY)
    conn = await asyncpg.connect(system.cluster.direct_url(leader, "authsvc"))
    try:
        sessions = {str(r["id"]): r["revoked_at"] for r in await conn.fetch("SELECT id, revoked_at FROM sessions")}
        tokens = {
            r["id"]: r for r in await conn.fetch("SELECT id, session_id, used_at, replaced_by FROM refresh_tokens")
        }
        revoked = {r["value"] for r in await conn.fetch("SELECT value FROM revocations WHERE kind = 'jti'")}
    finally:
        await conn.close()
    lost_logins = [s for s in record.chains if s not in sessions]
    assert not lost_logins, f"acknowledged logins missing from the primary: {lost_logins[:5]}"
    for session, spent, new in record.refreshes:
        assert new in tokens and str(tokens[new]["session_id"]) == session, f"acknowledged refresh lost: {new}"
        assert tokens[spent]["used_at"] is not None and tokens[spent]["replaced_by"] == new, (
            f"{spent} not spent for {new}"
        )
    assert set(record.revoked) <= revoked, f"acknowledged revokes lost: {sorted(set(record.revoked) - revoked)[:5]}"
    # No half-rotated session: the one unspent token of each live session is the one its client holds.
    assert not record.undecided, f"refreshes never decided: {sorted(record.undecided)[:5]}"
    for session, chain in record.chains.items():
        unspent = [t for t, row in tokens.items() if str(row["session_id"]) == session and row["used_at"] is None]
        if sessions[session] is None:
            assert unspent == [chain[-1]], f"session {session}: client holds {chain[-1]}, database has {unspent}"
        for spent in chain[:-1]:
            assert tokens[spent]["replaced_by"] is not None, f"session {session}: {spent} spent with no successor"


def load_verify(token: str) -> Any:
    from authsvc_client import pb

    return pb.VerifyRequest(token=token, audience=AUDIENCE)
