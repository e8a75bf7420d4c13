"""Running `authsvc serve` as a real process for the end-to-end tests."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
AUTHSVC = BIN / "authsvc"
LISTENING = re.compile(r"^authsvc listening on (\S+):(\d+)$")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TEST_KEK = "e2e:" + "C" * 43


def server_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env.update(
        AUTHSVC_DATABASE_URL=database_url,
        AUTHSVC_DATA_DIR=str(data_dir),
        AUTHSVC_KEK=TEST_KEK,
        AUTHSVC_LISTEN="127.0.0.1:0",
        AUTHSVC_SHUTDOWN_GRACE="2",
        **extra,
    )
    return env


@dataclass
class Server:
    process: subprocess.Popen[str]
    addr: str

    def stop(self) -> int:
        """SIGTERM, then a bounded wait; SIGKILL if it does not go."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def start_server(env: Mapping[str, str], log: Path) -> Server:
    """Start `authsvc serve`; wait (bounded) for the line naming its port."""
    errors = log.open("w")
    process = subprocess.Popen(
        [str(AUTHSVC), "serve"], env=dict(env), stdout=subprocess.PIPE, stderr=errors, text=True
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = process.stdout.readline()
            if not line:
                break
            match = LISTENING.match(line.strip())
            if match:
                return Server(process, f"{match.group(1)}:{match.group(2)}")
    finally:
        selector.close()
    process.kill()
    process.wait()
    raise AssertionError(f"authsvc serve did not start: {log.read_text()[-2000:]}")
