"""The server processes under test: authsvc itself and the empty-RPC ceiling."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_LISTENING = re.compile(r"listening on [^\s:]+:(\d+)")


class ServerProcess:
    """A child server; its port comes from the line it prints when listening."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = self._wait_port(timeout=60.0)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _drain(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            self._lines.put(raw.decode(errors="replace"))

    def _wait_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self._proc.poll() is not None:
                    break
                continue
            match = _LISTENING.search(line)
            if match:
                return int(match.group(1))
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} did not start; its log ends:\n{tail}")

    @property
    def sampled_pid(self) -> int:
        """The process a profiler should sample: one worker, or the server."""
        return min(_children(self.pid), default=self.pid)

    def cpu_seconds(self) -> float:
        """User plus system time of every thread so far, of the process and of
        its workers (the processes it started)."""
        return sum(_cpu(pid) for pid in (self.pid, *_children(self.pid)))

    def loop_cpu_seconds(self) -> float:
        """User plus system time so far of the main thread of each worker (of
        the process itself without workers): the thread running the event loop."""
        workers = _children(self.pid) or [self.pid]
        return sum(_cpu(pid, thread=pid) for pid in workers)

    def connections_per_worker(self) -> list[int]:
        """Established connections to the server's port that each worker
        holds, largest first: the kernel spreads them (SO_REUSEPORT), not evenly."""
        established = _established_inodes(self.port)
        counts = []
        for pid in _children(self.pid) or [self.pid]:
            try:
                links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
            except OSError:  # gone since it was listed
                continue
            counts.append(sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in established))
        return sorted(counts, reverse=True)

    def rss_bytes(self) -> int:
        """Resident memory of the process, or with workers, of the largest
        worker (the figure is per replica)."""
        workers = _children(self.pid)
        return max(_rss(pid) for pid in workers) if workers else _rss(self.pid)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


def _stat(pid: int, thread: int | None = None) -> list[str]:
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    return Path(path).read_text().rpartition(")")[2].split()


def _cpu(pid: int, thread: int | None = None) -> float:
    """Of the whole process, or of one of its threads."""
    try:
        fields = _stat(pid, thread)
    except OSError:  # gone since it was listed
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rpartition(":")[2], 16) == port:  # 01: ESTABLISHED
                found.add(fields[9])
    return found


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


def _children(pid: int) -> list[int]:
    """Worker processes of ``pid``: its children running Python's spawn entry point."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat(int(entry.name))[1]) == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def free_port() -> int:
    """A port nothing listens on now: workers share a fixed one, so it is
    chosen before they start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def authsvc_env(database_url: str, kek: str, workers: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AUTHSVC_LISTEN=f"127.0.0.1:{free_port() if workers > 1 else 0}",
        AUTHSVC_WORKERS=str(workers),
        AUTHSVC_DATABASE_URL=database_url,
        AUTHSVC_KEK=kek,
        # Chains of refreshes back to back; the default spacing would refuse them.
        AUTHSVC_REFRESH_MIN_INTERVAL="0",
        # Every login comes from 127.0.0.1: the per-peer counter would throttle
        # 64 logins in flight. Each in-flight login has its own account.
        AUTHSVC_PEER_MAX_ATTEMPTS="1000000",
        AUTHSVC_LOGIN_MAX_FAILURES="1000",
    )
    return env


def start_authsvc(
    database_url: str, kek: str, log_dir: Path, workers: int = 1, *, name: str = "", env: Mapping[str, str] = {}
) -> ServerProcess:
    """``name`` names its log (``<name>.log``); ``env`` is added to authsvc_env's."""
    exe = Path(sys.executable).with_name("authsvc")
    full_env = {**authsvc_env(database_url, kek, workers), **env}
    return ServerProcess(name or f"authsvc-{workers}w", [str(exe), "serve"], full_env, log_dir)


def start_empty(log_dir: Path, workers: int = 1) -> ServerProcess:
    argv = [sys.executable, "-m", "bench.empty_server", "--workers", str(workers)]
    if workers > 1:
        argv += ["--port", str(free_port())]
    return ServerProcess(f"empty-server-{workers}w", argv, dict(os.environ), log_dir)
