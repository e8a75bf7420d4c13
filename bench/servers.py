"""The server processes under test: authsvc itself and the empty-RPC ceiling."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
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

    def cpu_seconds(self) -> float:
        """User plus system time of every thread so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK

    def rss_bytes(self) -> int:
        return int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * _PAGE

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


def authsvc_env(database_url: str, kek: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AUTHSVC_LISTEN="127.0.0.1:0",
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


def start_authsvc(database_url: str, kek: str, log_dir: Path) -> ServerProcess:
    exe = Path(sys.executable).with_name("authsvc")
    return ServerProcess("authsvc", [str(exe), "serve"], authsvc_env(database_url, kek), log_dir)


def start_empty(log_dir: Path) -> ServerProcess:
    return ServerProcess("empty-server", [sys.executable, "-m", "bench.empty_server"], dict(os.environ), log_dir)
