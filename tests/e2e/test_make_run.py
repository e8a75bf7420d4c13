"""End to end: the README's first steps on the default `make run` path, with
nothing configured: an embedded PostgreSQL and a development KEK made in
``./.authsvc``, and the CLI, in a second "terminal", attaching to the server's
database, from the top of the checkout and from a folder below it.

The one change from the README: the server listens on a free port
(``AUTHSVC_LISTEN=127.0.0.1:0``), not on 50051, which a developer's own
``make run`` may hold on this machine. The README's shell blocks run as
written, with ``ADDR`` set to that address."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import procs
from .test_grpcurl import REPO

pytestmark = pytest.mark.e2e

VENV = Path(sys.executable).parent.parent
FIRST_START_TIMEOUT = 180.0  # initdb on a busy 2-core machine
SCRIPT_TIMEOUT = 120.0


def readme_blocks() -> list[str]:
    """The ```sh blocks of "Try it with grpcurl", in order."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Try it with grpcurl")
    return re.findall(r"```sh\n(.*?)```", readme[start : readme.index("\n### ", start)], re.DOTALL)


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that looks like the top of the repository: `.venv` is there."""
    top = tmp_path_factory.mktemp("checkout")
    (top / ".venv").symlink_to(VENV, target_is_directory=True)
    (top / "deep" / "below").mkdir(parents=True)
    return top


@pytest.fixture(scope="module")
def clean_env() -> dict[str, str]:
    """The developer's shell: no AUTHSVC_* at all (no URL, no KEK)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}


@pytest.fixture(scope="module")
def make_run(checkout: Path, clean_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """`make run`'s command (see test_make_run_runs_this), started at the top of the checkout."""
    log = checkout / "serve.log"
    env = {**clean_env, "AUTHSVC_LISTEN": "127.0.0.1:0"}
    saved, procs.START_TIMEOUT = procs.START_TIMEOUT, FIRST_START_TIMEOUT
    cwd = Path.cwd()
    try:
        os.chdir(checkout)  # Popen inherits it: `make run` runs at the top of the checkout
        with procs.serving(env, log) as (proc, addr):
            os.chdir(cwd)
            yield proc, addr, log
    finally:
        os.chdir(cwd)
        procs.START_TIMEOUT = saved


def test_make_run_runs_this() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run: install\n\t\$\(BIN\)/authsvc serve\n", makefile, re.MULTILINE)


def test_the_readme_first_steps_on_the_embedded_database(make_run, checkout, clean_env):
    _, addr, log = make_run
    started = log.read_text()
    assert "created a NEW, EMPTY embedded PostgreSQL in " + str(checkout.resolve() / ".authsvc" / "pg") in started
    assert "using the DEVELOPMENT key-encryption key" in started
    # pgserver's own set-up (initdb, pg_ctl: ~150 lines) stays out of the INFO log.
    assert "pgserver" not in started and "initdb" not in started
    assert len(started.splitlines()) < 20, started

    create, what_is_there, login, *_ = readme_blocks()
    done = bash(create, checkout, clean_env)
    assert done.returncode == 0, done.stderr
    assert "user alice created, subject " in done.stdout
    # The CLI attached to the server's database: it did not start or create one.
    assert "using the embedded PostgreSQL already running in" in done.stderr
    assert "created" not in done.stderr and "started" not in done.stderr

    shown = bash(what_is_there.replace("ADDR=127.0.0.1:50051", f"ADDR={addr}"), checkout, clean_env)
    assert shown.returncode == 0, shown.stderr
    assert "authsvc.v1.AuthService" in shown.stdout and '"status": "SERVING"' in shown.stdout

    issued = bash(f"ADDR={addr}\n{login}", checkout, clean_env)
    assert issued.returncode == 0, issued.stderr
    tokens = json.loads(issued.stdout[: issued.stdout.rindex("}") + 1])["tokens"]
    assert tokens["access_token"] and tokens["refresh_token"]


def test_the_cli_finds_the_servers_database_from_below(make_run, checkout, clean_env):
    listed = bash(".venv/bin/authsvc user list", checkout, clean_env)  # at the top, after the README's steps
    assert listed.returncode == 0, listed.stderr
    below = subprocess.run(
        [str(checkout / ".venv" / "bin" / "authsvc"), "user", "list"],
        cwd=checkout / "deep" / "below", env=clean_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert below.returncode == 0, below.stderr
    assert below.stdout == listed.stdout and " alice " in below.stdout
    assert not (checkout / "deep" / ".authsvc").exists() and not (checkout / "deep" / "below" / ".authsvc").exists()


def test_the_embedded_database_stops_with_the_server(make_run, checkout):
    """Last in this module: it stops the server the others used."""
    proc, _, _ = make_run
    pid_file = checkout / ".authsvc" / "pg" / "postmaster.pid"
    assert pid_file.exists()  # running while the server runs
    assert procs.stop(proc) == 0  # SIGTERM: a graceful exit
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # pg_ctl stop runs in the server's exit handler
    assert not pid_file.exists(), "the embedded PostgreSQL outlived authsvc serve"
