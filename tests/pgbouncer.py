"""A real PgBouncer (Debian's 1.18, scripts/ha-deps.sh installs it) in
front of a test Postgres, started by the test on a free port."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
START_TIMEOUT = 15.0  # seconds for it to accept connections


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _config(upstream: str, workdir: Path, port: int, pool_size: int) -> Path:
    parts = urlsplit(upstream)
    user, password = unquote(parts.username or "postgres"), unquote(parts.password or "")
    users = workdir / "users.txt"
    users.write_text(f'"{user}" "{password}"\n')
    users.chmod(0o600)
    ini = workdir / "pgbouncer.ini"
    # Transaction pooling with a pool far smaller than the client's: every
    # server connection serves many client connections in turn, so anything
    # that leans on a session (a prepared statement, LISTEN, a session lock)
    # breaks here as it would in production.
    ini.write_text(
        "[databases]\n"
        f"* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n"
        "logfile =\npidfile =\n"
    )
    return ini


@contextmanager
def pgbouncer(upstream: str, workdir: Path, pool_size: int = 2) -> Iterator[int]:
    """PgBouncer in transaction mode in front of ``upstream``'s server: its port.
    It refuses to run as root, so under root it takes the postgres user's identity."""
    argv = [PGBOUNCER]
    if os.geteuid() == 0:
        argv += ["-u", pwd.getpwnam("postgres").pw_name]
    log = workdir / "pgbouncer.log"
    for _attempt in range(3):  # a free port can be taken between our probe and its bind
        port = free_port()
        with log.open("ab") as err:
            proc = subprocess.Popen([*argv, str(_config(upstream, workdir, port, pool_size))], stderr=err)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline and not _accepts(port):
            time.sleep(0.05)
        if proc.poll() is None and _accepts(port):
            break
        proc.kill()
        proc.wait(5)
    else:
        raise AssertionError(f"pgbouncer did not start:\n{log.read_text()}")
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def through(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the pooler's."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"))
