"""The write ceilings: pgbench running Refresh's and Revoke's SQL on a scratch
database.

The statements are authsvc's own, taken from the store module
(``_SELECT_FOR_ROTATION`` and ``_ROTATE_AUDITED``, what ``rotate_refresh`` sends
in one transaction: lock the token and its session, then spend the token,
insert its successor, count the refresh and append its audit row to the
chain; and ``_REVOKE_JTI_AUDITED``, Revoke's one statement: the log entry, its
notice and the audit row), with each parameter replaced by a pgbench
expression. Each pgbench client follows its own chain of tokens, as
one session would: the token it spends is the one its previous transaction
inserted. Prepared statements, as asyncpg uses; as many clients as authsvc's
pool.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from authsvc.store import _audit, _sessions
from authsvc.store.postgres import PostgresStore

from .database import create_database, drop_database

# :client_id is pgbench's own; :prev is the chain's last token (0 at the start).
_TOKEN = "('n' || :client_id || '_' || :prev)"
_NEW = "('n' || :client_id || '_' || :r)"
_SESSION = "md5('s' || :client_id)::uuid"
_PEER = "'ipv4:127.0.0.1:40000'"
_AGENT = "'grpc-python-asyncio/1.85 grpc-c/50.0.0 (linux; chttp2)'"
# The parameters of each statement, as rotate_refresh passes them.
_SELECT_ARGS = {1: _TOKEN}
def _audit_args(first: int, event: str, session: str) -> dict[int, str]:
    """The audit row's parameters (``append_params``: the digest, then the
    fields), from ``$first`` on."""
    values = ["sha256(:r::text::bytea)", "now()", f"'{event}'", "'ok'", "'holder'", "'bench-user'", "''", session,
              _PEER, "''", "''", "''"]  # fmt: skip
    assert len(values) == _audit.APPEND_PARAMS
    return {first + i: v for i, v in enumerate(values)}


_ROTATE_ARGS = {
    1: _TOKEN, 2: "now()", 3: _NEW, 4: "NULL", 5: "NULL", 6: _PEER, 7: _AGENT, 8: _SESSION,
    9: "sha256(:r::text::bytea)", 10: "'{read,write}'", 11: "now()", 12: "now() + interval '1 day'",
    **_audit_args(13, "refresh", _SESSION),
}  # fmt: skip
_REVOKE_ARGS = {
    1: "'jti'", 2: "('j' || :r)", 3: "now()", 4: "now() + interval '331 seconds'", 5: "'authsvc_revocations'",
    **_audit_args(6, "revoke_token", "NULL"),
}  # fmt: skip


def _bind(sql: str, args: dict[int, str]) -> str:
    """The statement on one line with its $n replaced by pgbench expressions."""
    used = {int(n) for n in re.findall(r"\$(\d+)", sql)}
    if used != set(args):
        raise RuntimeError("authsvc's SQL changed its parameters: update bench/pgbench.py to match")
    bound = re.sub(r"\$(\d+)", lambda m: args[int(m.group(1))], sql)
    return " ".join(bound.split())


def script() -> str:
    return "\n".join(
        [
            "\\set r random(1, 9000000000000000000)",
            "BEGIN;",
            _bind(_sessions._SELECT_FOR_ROTATION, _SELECT_ARGS) + ";",
            _bind(_sessions._ROTATE_AUDITED, _ROTATE_ARGS) + ";",
            "COMMIT;",
            "\\set prev :r",
            "",
        ]
    )


def revoke_script() -> str:
    statement = _bind(_sessions._REVOKE_JTI_AUDITED, _REVOKE_ARGS)
    return "\n".join(["\\set r random(1, 9000000000000000000)", statement + ";", ""])


_POPULATE = """
INSERT INTO users (id, username, password_hash, scopes, audiences, created_at)
    VALUES ('00000000-0000-0000-0000-000000000001', 'bench-user', 'x', '{read,write}', '{orders}', now());
-- Bulk rows so that indexes have a realistic size.
INSERT INTO sessions (id, user_id, subject, audiences, scopes, amr, acr, auth_time, created_at, expires_at)
    SELECT md5('bulk' || g)::uuid, '00000000-0000-0000-0000-000000000001', 'bench-user', '{authsvc,orders}',
           '{read,write}', '{pwd}', 'aal1', now(), now(), now() + interval '7 days'
    FROM generate_series(1, @BULK@) g;
INSERT INTO refresh_tokens (id, session_id, secret_hash, scopes, created_at, expires_at)
    SELECT 'bulk' || g, md5('bulk' || g)::uuid, sha256(g::text::bytea), '{read,write}', now(), now() + interval '1 day'
    FROM generate_series(1, @BULK@) g;
-- One session per pgbench client, with the first token of its chain.
INSERT INTO sessions (id, user_id, subject, audiences, scopes, amr, acr, auth_time, created_at, expires_at)
    SELECT md5('s' || c)::uuid, '00000000-0000-0000-0000-000000000001', 'bench-user', '{authsvc,orders}',
           '{read,write}', '{pwd}', 'aal1', now(), now(), now() + interval '7 days'
    FROM generate_series(0, @CLIENTS@ - 1) c;
INSERT INTO refresh_tokens (id, session_id, secret_hash, scopes, created_at, expires_at)
    SELECT 'n' || c || '_0', md5('s' || c)::uuid, sha256(c::text::bytea), '{read,write}', now(),
           now() + interval '1 day'
    FROM generate_series(0, @CLIENTS@ - 1) c;
"""

BULK_ROWS = 10_000

_TPS = re.compile(r"tps = ([\d.]+) \(without initial connection time\)")
_LATENCY = re.compile(r"latency average = ([\d.]+) ms")
_FAILED = re.compile(r"number of failed transactions: (\d+)")
_DONE = re.compile(r"number of transactions actually processed: (\d+)")


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int
    failed: int
    chained: int  # transactions whose token came from the previous one
    clients: int


def _pgbench(url: str, script: Path, clients: int, seconds: float) -> str:
    argv = [
        "pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(max(1, round(seconds))),
        "-D", "prev=0", "-f", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0 or not _TPS.search(done.stdout):
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return done.stdout


async def run(admin_url: str, workdir: Path, clients: int, warmup: float, seconds: float) -> PgbenchResult:
    url = await create_database(admin_url, "authsvc_bench_pgbench")
    try:
        store = await PostgresStore.connect(url, min_size=1, max_size=1)
        try:
            await store.migrate()
        finally:
            await store.close()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(_POPULATE.replace("@BULK@", str(BULK_ROWS)).replace("@CLIENTS@", str(int(clients))))
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        path = workdir / "refresh.pgbench"
        path.write_text(script())
        _pgbench(url, path, clients, warmup)
        conn = await asyncpg.connect(url)
        try:
            spent_before = await conn.fetchval("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
            out = _pgbench(url, path, clients, seconds)
            spent_after = await conn.fetchval("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
        finally:
            await conn.close()
    finally:
        await drop_database(admin_url, url)
    tps, latency = _TPS.search(out), _LATENCY.search(out)
    failed, done = _FAILED.search(out), _DONE.search(out)
    assert tps is not None and latency is not None and done is not None
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)),
        transactions=int(done.group(1)),
        failed=int(failed.group(1)) if failed else 0,
        # A chained transaction spends a token no one spent before.
        chained=int(spent_after - spent_before),
        clients=clients,
    )


async def run_revoke(admin_url: str, workdir: Path, clients: int, warmup: float, seconds: float) -> PgbenchResult:
    """Revoke's ceiling: its one statement, as many clients as authsvc's pool."""
    url = await create_database(admin_url, "authsvc_bench_pgrevoke")
    try:
        store = await PostgresStore.connect(url, min_size=1, max_size=1)
        try:
            await store.migrate()
        finally:
            await store.close()
        path = workdir / "revoke.pgbench"
        path.write_text(revoke_script())
        _pgbench(url, path, clients, warmup)
        out = _pgbench(url, path, clients, seconds)
    finally:
        await drop_database(admin_url, url)
    tps, latency, done = _TPS.search(out), _LATENCY.search(out), _DONE.search(out)
    failed = _FAILED.search(out)
    assert tps is not None and latency is not None and done is not None
    count = int(done.group(1))
    return PgbenchResult(
        tps=float(tps.group(1)), latency_ms=float(latency.group(1)), transactions=count,
        failed=int(failed.group(1)) if failed else 0, chained=count, clients=clients,
    )  # fmt: skip
