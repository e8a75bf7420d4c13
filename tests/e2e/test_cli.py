"""The command line as an operator meets it: --version, `authsvc config`,
listings with headers, and one clear line (exit 2, no traceback) for each
set-up mistake, found before anything touches the database."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from ..support import create_database, drop_database, with_database
from .procs import AUTHSVC, CALL_TIMEOUT, STOP_TIMEOUT, TEST_KEK, cli, server_env, serving

pytestmark = pytest.mark.e2e

KEY = TEST_KEK.partition(":")[2]


def run(env: Mapping[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AUTHSVC), *args], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False
    )


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line of a refused start: exit 2, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if " WARNING " not in line and " INFO " not in line]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
async def database(admin_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_url, prefix="authsvc_cli")
    yield url
    await drop_database(admin_url, url)


def test_version_comes_from_the_package_metadata(tmp_path):
    done = run(server_env("postgresql://unused/x", tmp_path), "--version")
    assert done.returncode == 0
    assert done.stdout == f"authsvc {version('authsvc')}\n"


def test_a_duration_with_a_unit_is_refused_saying_what_is_expected(tmp_path):
    env = server_env("postgresql://unused/x", tmp_path, AUTHSVC_ACCESS_TOKEN_TTL="300s")
    line = refused(run(env, "serve"))
    assert line == (
        "authsvc: bad setting: AUTHSVC_ACCESS_TOKEN_TTL: expected seconds, a whole number (such as 300), got '300s'"
    )


def test_a_misspelt_setting_is_warned_about(tmp_path):
    env = server_env("postgresql://unused/x", tmp_path, AUTHSVC_ACESS_TOKEN_TTL="600")
    done = run(env, "config")
    assert done.returncode == 0, done.stderr
    assert "AUTHSVC_ACESS_TOKEN_TTL is not an authsvc setting (did you mean AUTHSVC_ACCESS_TOKEN_TTL?)" in done.stderr
    assert re.search(r"^AUTHSVC_ACCESS_TOKEN_TTL\s+= 300\s+# default$", done.stdout, re.MULTILINE)


def test_config_prints_the_effective_configuration_with_secrets_masked(tmp_path):
    (tmp_path / "kek").write_text(TEST_KEK + "\n")
    (tmp_path / "url").write_text("postgresql://authsvc:s3cret-pw@db.internal:5432/authsvc\n")
    env = server_env("", tmp_path / "data", AUTHSVC_ACCESS_TOKEN_TTL="600")
    del env["AUTHSVC_KEK"], env["AUTHSVC_DATABASE_URL"]
    env.update(AUTHSVC_KEK_FILE=str(tmp_path / "kek"), AUTHSVC_DATABASE_URL_FILE=str(tmp_path / "url"))
    done = run(env, "config")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert KEY not in out + done.stderr and "s3cret-pw" not in out + done.stderr
    assert re.search(rf"^AUTHSVC_KEK\s+= e2e:\*\*\*\*\s+# file {tmp_path}/kek$", out, re.MULTILINE)
    assert "postgresql://authsvc:****@db.internal:5432/authsvc" in out
    assert re.search(r"^AUTHSVC_ACCESS_TOKEN_TTL\s+= 600\s+# environment$", out, re.MULTILINE)
    assert re.search(r"^AUTHSVC_REFLECTION\s+= true\s+# default$", out, re.MULTILINE)
    # It checks too: what `serve` would refuse is said, with exit 2.
    env.update(AUTHSVC_LISTEN="0.0.0.0:50051")
    bad = run(env, "config")
    assert bad.returncode == 2 and "`authsvc serve` would refuse this: AUTHSVC_LISTEN:" in bad.stderr


async def test_a_server_without_a_kek_is_refused_before_touching_the_database(database, tmp_path):
    env = server_env(database, tmp_path)
    del env["AUTHSVC_KEK"]
    line = refused(run(env, "serve"))
    assert line.startswith("authsvc: bad setting: AUTHSVC_KEK: required with AUTHSVC_DATABASE_URL")
    conn = await asyncpg.connect(database)
    try:  # no migration ran: the database is as created
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("verb", [("serve",), ("user", "list")])
def test_database_mistakes_are_one_line_naming_the_setting_and_the_host(admin_url, tmp_path, verb):
    parts = urlsplit(admin_url)
    host = f"{parts.hostname}:{parts.port or 5432}"
    missing = with_database(admin_url, "authsvc_no_such_database")
    line = refused(run(server_env(missing, tmp_path), *verb))
    assert line.startswith("authsvc: AUTHSVC_DATABASE_URL: database 'authsvc_no_such_database' does not exist on ")
    assert host in line and "createdb" in line

    role = parts._replace(netloc=f"no_such_role:pw-not-shown@{host}").geturl()
    line = refused(run(server_env(role, tmp_path), *verb))
    assert line.startswith(f"authsvc: AUTHSVC_DATABASE_URL: PostgreSQL on {host} refused role 'no_such_role'")
    assert "pw-not-shown" not in line

    closed = f"postgresql://postgres:pw-not-shown@127.0.0.1:{_free_port()}/authsvc"
    line = refused(run(server_env(closed, tmp_path), *verb))
    assert re.fullmatch(
        r"authsvc: AUTHSVC_DATABASE_URL: cannot reach PostgreSQL at 127\.0\.0\.1:\d+ \(.+\): start it, "
        r"or fix the host and port",
        line,
    ), line
    assert "pw-not-shown" not in line


def test_an_admin_command_never_creates_an_embedded_database(tmp_path):
    env = server_env("", tmp_path / "elsewhere")
    del env["AUTHSVC_DATABASE_URL"], env["AUTHSVC_DATA_DIR"]
    line = refused(run(env, "user", "list", cwd=tmp_path))
    assert line.startswith(f"authsvc: AUTHSVC_DATA_DIR: no embedded database in {tmp_path.resolve()}/.authsvc")
    assert not (tmp_path / ".authsvc").exists()


async def test_listings_have_headers_audiences_and_mark_mtls_clients(database, tmp_path):
    env = server_env(database, tmp_path)
    cli(env, "user", "add", "carol", "--scope", "read", "--audience", "orders", "--audience", "billing",
        "--password-stdin", stdin="correct horse battery staple\n")  # fmt: skip
    cli(env, "client", "add", "plain", "--scope", "orders.read", "--audience", "orders")
    cli(env, "client", "add", "cert", "--audience", "orders", "--tls-san-uri", "spiffe://example.org/cert")

    users = [line.split() for line in cli(env, "user", "list").splitlines()]
    assert users[0] == ["SUBJECT", "USERNAME", "MFA", "SCOPES", "AUDIENCES"]
    assert users[1][1:] == ["carol", "-", "read", "orders,billing"]

    clients = {line.split()[1]: line.split() for line in cli(env, "client", "list").splitlines()[1:]}
    header = cli(env, "client", "list").splitlines()[0].split()
    assert header == ["CLIENT_ID", "NAME", "AUTH", "CERTIFICATE", "SCOPES", "AUDIENCES", "EXCHANGE"]
    assert clients["plain"][2:] == ["secret", "-", "orders.read", "orders", "-"]
    assert clients["cert"][2:] == ["mtls", "uri:spiffe://example.org/cert", "-", "orders", "-"]


async def test_health_says_serving_for_a_live_server_and_fails_without_one(database, tmp_path):
    env = server_env(database, tmp_path)
    with serving(env, tmp_path / "serve.log") as (proc, addr):
        probe = {**env, "AUTHSVC_LISTEN": addr}
        up = run(probe, "health")
        assert (up.returncode, up.stdout) == (0, f"{addr} SERVING\n"), up.stderr
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_TIMEOUT)
    down = run(probe, "health")
    assert down.returncode == 1 and f"authsvc health: {addr}: UNAVAILABLE" in down.stderr
    assert "Traceback" not in down.stderr
