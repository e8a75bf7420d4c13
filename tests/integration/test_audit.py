"""Issue 15: the audit trail. Three replicas on one database append to its
lanes at the same time and it verifies; then rows edited, deleted and
inserted with SQL are each named by ``authsvc audit verify``; pruning leaves
a checkpoint that keeps the chain verifiable; the events carry who, whom,
from where and which request, and never a secret."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from authsvc.config import Settings
from authsvc.domain.audit import AuditFilter, query, trail
from authsvc.server import App
from authsvc.store.postgres import PostgresStore
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..conftest import TEST_KEK
from ..support import FakeClock, create_database, drop_database
from .helpers import PASSWORD, add_client, add_user, login

REPLICAS = 3
ROUNDS = 6


@pytest.fixture
async def chain_db(admin_url: str) -> AsyncIterator[str]:
    """A database of its own: these tests tamper with the trail."""
    url = await create_database(admin_url, "authsvc_audit")
    try:
        yield url
    finally:
        await drop_database(admin_url, url)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTHSVC_DATABASE_URL": url, "AUTHSVC_KEK": TEST_KEK}
    return subprocess.run(
        [sys.executable, "-m", "authsvc", "audit", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def traffic(stub: pb_grpc.AuthServiceAsyncStub, user, client, replica: int) -> int:
    """Logins (good and bad, password and client), refreshes and a revoke
    through one replica; gives how many audit events they write."""
    events = 0
    for i in range(ROUNDS):
        meta = (("x-request-id", f"r{replica}-{i}"),)
        tokens = await login(stub, user)
        await stub.Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token), metadata=meta)
        cred = pb.ClientCredential(client_id=client.id, client_secret=client.secret)
        await stub.Issue(pb.IssueRequest(client=cred, audience=["orders"]), metadata=meta)
        with pytest.raises(grpc.aio.AioRpcError):
            bad = pb.PasswordCredential(username=f"nobody-{replica}-{i}", password="wrong")
            await stub.Issue(pb.IssueRequest(password=bad), metadata=meta)
        events += 4
    await stub.Revoke(pb.RevokeRequest(token=tokens.access_token))
    return events + 1


async def test_replicas_write_the_chains_and_verify_names_every_tampering(
    settings: Settings, chain_db: str, passwords, clock: FakeClock
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(App(settings, chain_db, clock=clock)) for _ in range(REPLICAS)]
        store: PostgresStore = apps[0].deps.store  # type: ignore[union-attr,assignment]
        user = await add_user(store, passwords, clock)
        client = await add_client(store, clock)
        channels = [await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{a.port}")) for a in apps]
        stubs = [pb_grpc.AuthServiceStub(ch) for ch in channels]
        written = await asyncio.gather(*(traffic(s, user, client, i) for i, s in enumerate(stubs)))
        # And a burst straight at the stores: 3 x 8 appends in flight at once (few
        # enough connections for a Postgres shared with other test runs).
        burst = [a.deps.store.audit("key_rotated", clock.now(), actor="system") for a in apps for _ in range(8)]  # type: ignore[union-attr]
        await asyncio.gather(*burst)
        written.append(len(burst))

        result = await trail.verify(store)
        assert result.ok, result.problems
        total = sum(written)
        assert result.rows == sum(lane.head.seq - lane.checkpoint.seq for lane in result.lanes) == total
        assert len([lane for lane in result.lanes if lane.head.seq]) > 1  # the replicas' writes spread over lanes
        seqs = [e.seq for e in (await query(store, page_size=1000)).entries]
        assert len(seqs) == len(set(seqs)) == total  # every event listed once, in one order

        ok = cli(chain_db, "verify")
        assert ok.returncode == 0, ok.stderr
        assert f"ok: {total} rows verified" in ok.stdout and f"heads: {result.fingerprint}" in ok.stdout

        conn = await asyncpg.connect(chain_db)
        try:
            busiest = await conn.fetchrow(
                "SELECT lane, max(lane_seq) FROM audit_log GROUP BY lane ORDER BY 2 DESC LIMIT 1"
            )
            assert busiest is not None
            lane, last = busiest
            assert last >= 6
            where = f"lane = {lane} AND lane_seq"
            await conn.execute(f"UPDATE audit_log SET subject = 'someone-else' WHERE {where} = 2")
            await conn.execute(f"DELETE FROM audit_log WHERE {where} IN (4, 5)")
            for moved_to in (last + 1000, 0):  # a copy of row 1 put past the head, and before the start
                await conn.execute(
                    "INSERT INTO audit_log (lane, lane_seq, prev_hash, hash, at, event)"
                    f" SELECT lane, {moved_to}, prev_hash, hash, at, 'login_ok' FROM audit_log WHERE {where} = 1"
                )
            await conn.execute(f"DELETE FROM audit_log WHERE {where} = {last}")
        finally:
            await conn.close()
        bad = cli(chain_db, "verify")
        assert bad.returncode == 1
        report = bad.stderr
        assert f"lane {lane} seq 2: edited" in report
        assert f"lane {lane} seq 4..5: deleted" in report
        assert f"lane {lane} seq {last + 1000}: inserted: beyond the chain head" in report
        assert f"lane {lane} seq 0: inserted: at or before the checkpoint" in report
        assert f"lane {lane} seq {last}: deleted: rows missing at the end" in report
        assert "FAILED: 5 problem(s)" in report


async def test_prune_leaves_a_checkpoint_and_the_chain_verifies(
    settings: Settings, chain_db: str, passwords, clock: FakeClock
) -> None:
    async with App(settings, chain_db, clock=clock) as app:
        store: PostgresStore = app.deps.store  # type: ignore[union-attr,assignment]
        for i in range(10):
            await store.audit("key_rotated", clock.now() - 100 * 86400 + i, actor="system")
        for i in range(5):
            await store.audit("key_rotated", clock.now() + i, actor="system")
        assert await trail.prune(store, clock.now(), 30 * 86400) == 10
        result = await trail.verify(store)
        assert result.ok, result.problems
        assert result.rows == 5
        assert sum(lane.checkpoint.seq for lane in result.lanes) == 10  # every lane starts at its cut
        listed = cli(chain_db, "verify")
        assert listed.returncode == 0 and "ok: 5 rows verified" in listed.stdout
        conn = await asyncpg.connect(chain_db)
        try:
            oldest = await conn.fetchrow("SELECT lane, lane_seq FROM audit_log ORDER BY lane, lane_seq LIMIT 1")
            assert oldest is not None
            lane, first = oldest
            # "Pruned" by hand, the checkpoint not moved.
            await conn.execute("DELETE FROM audit_log WHERE lane = $1 AND lane_seq = $2", lane, first)
        finally:
            await conn.close()
        problems = (await trail.verify(store)).problems
        assert [(p.lane, p.seq, p.kind) for p in problems] == [(lane, first, "deleted")]


async def test_events_say_who_whom_where_and_which_request_never_a_secret(
    app: App, store: PostgresStore, stub: pb_grpc.AuthServiceAsyncStub, passwords, clock: FakeClock
) -> None:
    user = await add_user(store, passwords, clock)
    tokens = await login(stub, user)
    meta = (("x-request-id", "req-audit-1"),)
    await stub.Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token), metadata=meta)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Issue(
            pb.IssueRequest(password=pb.PasswordCredential(username=user.name, password="not it")), metadata=meta
        )
    page = await query(store, AuditFilter(subject=user.id))
    by_type = {e.event.event: e.event for e in page.entries}
    assert set(by_type) >= {"login_ok", "refresh", "login_failed"}
    assert by_type["login_ok"].actor == user.id and by_type["login_ok"].outcome == "ok"
    assert by_type["login_ok"].session_id == tokens.session_id and by_type["login_ok"].peer.startswith("ipv4:")
    assert by_type["refresh"].request_id == "req-audit-1"
    assert by_type["login_failed"].outcome == "failed" and "wrong password" in by_type["login_failed"].detail
    secrets = (PASSWORD, "not it", tokens.refresh_token, tokens.access_token, tokens.refresh_token.split(".")[1])
    rows = await store._pool.fetch("SELECT * FROM audit_log")
    text = json.dumps([dict(r) for r in rows], default=str)
    assert not [s for s in secrets if s in text]


async def test_list_filters_pages_and_prints_json(
    settings: Settings, chain_db: str, passwords, clock: FakeClock
) -> None:
    async with App(settings, chain_db, clock=clock) as app:
        store: PostgresStore = app.deps.store  # type: ignore[union-attr,assignment]
        for i in range(7):
            await store.audit("login_failed", clock.now() + i, subject="s1", outcome="failed")
            await store.audit("refresh", clock.now() + i, subject="s2", outcome="ok")
        first = await query(store, AuditFilter(subject="s1"), page_size=3)
        second = await query(store, AuditFilter(subject="s1"), first.next_page_token, 3)
        third = await query(store, AuditFilter(subject="s1"), second.next_page_token, 3)
        assert [len(p.entries) for p in (first, second, third)] == [3, 3, 1] and third.next_page_token == ""
        assert {e.event.subject for p in (first, second, third) for e in p.entries} == {"s1"}
        newest = await query(store, AuditFilter(type="refresh"), page_size=2, newest_first=True)
        assert newest.entries[0].seq > newest.entries[1].seq
        since = await query(store, AuditFilter(since=clock.now() + 5))
        assert len(since.entries) == 4

        out = cli(chain_db, "list", "--subject", "s2", "--type", "refresh", "--json")
        assert out.returncode == 0, out.stderr
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        assert len(lines) == 7 and {(x["subject"], x["event"]) for x in lines} == {("s2", "refresh")}
        assert lines[0]["at"].endswith("Z") and lines[0]["seq"] < lines[1]["seq"]
        assert cli(chain_db, "list", "--since", "not-a-time").returncode == 2


async def test_a_lane_without_its_head_refuses_writes_and_fails_verification(
    settings: Settings, chain_db: str, passwords, clock: FakeClock
) -> None:
    """Someone who can write the database deletes lanes' heads so that later
    writes go unaudited: the writes fail instead, and verify names each lane."""
    async with App(settings, chain_db, clock=clock) as app:
        store: PostgresStore = app.deps.store  # type: ignore[union-attr,assignment]
        await store.audit("key_rotated", clock.now(), actor="system")
        conn = await asyncpg.connect(chain_db)
        try:
            await conn.execute("DELETE FROM audit_chain")  # every lane's head
            await conn.execute("DELETE FROM audit_checkpoint WHERE id = 3")
        finally:
            await conn.close()
        with pytest.raises(asyncpg.NotNullViolationError):
            await store.audit("key_rotated", clock.now(), actor="system")
        user = await add_user(store, passwords, clock)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError):  # a login that cannot be audited does not happen
                await login(pb_grpc.AuthServiceStub(ch), user)
        result = await trail.verify(store)
        kinds = [(p.lane, p.kind) for p in result.problems]
        assert [lane for lane, kind in kinds if kind == "missing-head"] == list(range(1, 17))
        assert (3, "missing-checkpoint") in kinds
        bad = cli(chain_db, "verify")
        assert bad.returncode == 1 and "lane 1 seq 0: missing-head" in bad.stderr


def test_operator_commands_are_audited_with_their_actor(chain_db: str) -> None:
    env = {**os.environ, "AUTHSVC_DATABASE_URL": chain_db, "AUTHSVC_KEK": TEST_KEK}
    added = subprocess.run(
        [sys.executable, "-m", "authsvc", "user", "add", "dave", "--password-stdin"],
        input="a long enough password 42\n", check=False, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    rotated = subprocess.run(
        [sys.executable, "-m", "authsvc", "keys", "rotate", "--force"],
        check=False, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    out = cli(chain_db, "list", "--json")
    events = {x["event"]: x for x in map(json.loads, out.stdout.splitlines())}
    assert events["user_created"]["actor"].startswith("cli:") and events["user_created"]["subject"]
    assert events["key_rotated"]["actor"].startswith("cli:") and "forced=True" in events["key_rotated"]["detail"]
    assert "a long enough password" not in out.stdout
    assert cli(chain_db, "verify").returncode == 0


README_COMMANDS = (
    ("verify",),
    ("list", "--type", "login_failed", "--since", "1h"),
    ("list", "--since", "2026-01-01T00:00:00Z", "--json"),
)


def test_readme_audit_commands_work_as_written(chain_db: str) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for args in README_COMMANDS:
        assert " ".join((".venv/bin/authsvc", "audit", *args)) in readme
        done = cli(chain_db, *args)
        assert done.returncode == 0, done.stderr
