"""AUTHSVC_WORKERS: several replicas in one `authsvc serve`, on one port.

The kernel spreads connections over the workers (SO_REUSEPORT); they must
agree (a revoke through one is honoured by all), a killed worker must be
replaced, SIGTERM must take them all down, and a lone server must refuse a
port that is already taken rather than silently share it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import drop_database
from .procs import AUTHSVC, CALL_TIMEOUT, server_env, serving, stop

pytestmark = pytest.mark.e2e

WORKERS = 2
CONNECTIONS = 16  # all on one worker by chance: 2 * 2**-16


def free_ports() -> tuple[int, int]:
    """A free gRPC port and a free HTTP port whose next one is free too
    (worker N serves the side port on port + N)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b, socket.socket() as c:
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            http = b.getsockname()[1]
            try:
                c.bind(("127.0.0.1", http + 1))
            except OSError:
                continue
            return a.getsockname()[1], http
    raise AssertionError("no free ports")


def workers_env(url: str, data: Path) -> tuple[dict[str, str], int, int]:
    """`authsvc serve` with WORKERS workers on free ports: (env, gRPC port, first side port)."""
    port, http = free_ports()
    env = server_env(
        url, data, AUTHSVC_WORKERS=str(WORKERS),
        AUTHSVC_LISTEN=f"127.0.0.1:{port}", AUTHSVC_HTTP_LISTEN=f"127.0.0.1:{http}",
    )  # fmt: skip
    return env, port, http


def workers_of(supervisor: int) -> set[int]:
    """Pids of the supervisor's worker processes (not its resource tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == supervisor and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def rpc_calls(http_port: int, method: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    prefix = f'authsvc_rpc_total{{method="{method}",code="OK"}} '
    return sum(int(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix))


def healthy(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def own_connection(addr: str) -> grpc.aio.Channel:
    # A channel of its own subchannel pool opens its own TCP connection, which
    # the kernel may hand to either worker.
    return grpc.aio.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1)])


async def issue(stub: pb_grpc.AuthServiceAsyncStub, client_id: str, secret: str) -> str:
    cred = pb.IssueRequest(client=pb.ClientCredential(client_id=client_id, client_secret=secret))
    return (await stub.Issue(cred, timeout=10)).tokens.access_token


async def test_workers_share_the_port_and_agree_on_revocations(replica_db, tmp_path: Path):
    url, client_id, secret = replica_db
    env, port, http = workers_env(url, tmp_path)
    with serving(env, tmp_path / "serve.log") as (proc, addr):
        assert addr == f"127.0.0.1:{port}"
        pids = workers_of(proc.pid)
        assert len(pids) == WORKERS
        channels = [own_connection(addr) for _ in range(CONNECTIONS)]
        try:
            stubs = [pb_grpc.AuthServiceStub(ch) for ch in channels]
            tokens = await asyncio.gather(*(issue(s, client_id, secret) for s in stubs))
            # Every worker took some of the connections.
            served = [rpc_calls(http + n, "Issue") for n in range(WORKERS)]
            assert sum(served) == CONNECTIONS and all(served), served

            # A revoke through one connection is honoured through every one.
            await stubs[0].Revoke(pb.RevokeRequest(token=tokens[1]))
            deadline = time.monotonic() + 5
            while True:
                answers = await asyncio.gather(
                    *(s.Verify(pb.VerifyRequest(token=tokens[1], audience="orders")) for s in stubs)
                )
                if all(a.reason == pb.INACTIVE_REASON_REVOKED for a in answers):
                    break
                assert time.monotonic() < deadline, answers
                await asyncio.sleep(0.01)
            # ... and nothing else was revoked with it.
            others = await asyncio.gather(
                *(s.Verify(pb.VerifyRequest(token=tokens[0], audience="orders")) for s in stubs)
            )
            assert all(a.active for a in others)
        finally:
            for ch in channels:
                await ch.close(None)

        # A lone server, or a second set of workers, on the same port refuses
        # it, clearly: neither may silently take part of the connections.
        for workers in ("1", "2"):
            again = dict(env, AUTHSVC_WORKERS=workers, AUTHSVC_HTTP_LISTEN="")
            done = subprocess.run(
                [str(AUTHSVC), "serve"], env=again, capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False
            )
            assert done.returncode == 2, done.stderr
            assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
        assert workers_of(proc.pid) == pids

        assert stop(proc) == 0
    for pid in pids:  # SIGTERM reached every worker, and each was reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_killed_worker_is_replaced(replica_db, tmp_path: Path):
    url, client_id, secret = replica_db
    env, _, http = workers_env(url, tmp_path)
    with serving(env, tmp_path / "serve.log") as (proc, addr):
        before = workers_of(proc.pid)
        victim = min(before)
        os.kill(victim, 9)
        deadline = time.monotonic() + 30
        while True:
            now = workers_of(proc.pid)
            if len(now) == WORKERS and victim not in now and all(healthy(http + n) for n in range(WORKERS)):
                break
            assert time.monotonic() < deadline, f"not replaced: {now}\n{(tmp_path / 'serve.log').read_text()}"
            await asyncio.sleep(0.05)
        # New connections are served whichever worker takes them.
        channels = [own_connection(addr) for _ in range(CONNECTIONS)]
        try:
            tokens = await asyncio.gather(*(issue(pb_grpc.AuthServiceStub(ch), client_id, secret) for ch in channels))
            assert all(tokens)
        finally:
            for ch in channels:
                await ch.close(None)
        assert "worker" in (tmp_path / "serve.log").read_text()
        assert stop(proc) == 0


async def test_a_worker_that_cannot_start_again_is_given_up_on(admin_url, replica_db, tmp_path: Path):
    """With its database gone, a replaced worker dies before serving; the
    supervisor waits longer each time (1, 2, 4, 8 s) and then exits 1 with
    every worker stopped, so that whatever runs it sees the failure."""
    url, _, _ = replica_db
    env, _, _ = workers_env(url, tmp_path)
    log = tmp_path / "serve.log"
    with serving(env, log) as (proc, _addr):
        pids = workers_of(proc.pid)
        await drop_database(admin_url, url)
        os.kill(min(pids), 9)
        code = await asyncio.to_thread(proc.wait, 60)
        assert code == 1, log.read_text()
    text = log.read_text()
    assert "failed to start 5 times in a row; giving up" in text
    waits = ["in 1 s", "in 2 s", "in 4 s", "in 8 s"]
    assert [w for w in waits if w in text] == waits
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
