"""``python -m bench.ab REV [REV ...]``: authsvc at several git revisions, side
by side, each on the same pinned core.

A full ``make bench`` moves by about 5% between runs: the host drifts, and the
kernel spreads connections over the workers differently each time. A change
worth a few percent drowns in that. Here every revision runs as a single
worker pinned to core 0, the empty-RPC ceiling too, and h2grpc is pinned to
core 1. The runs take turns, round after round, and each ratio divides by the
empty RPC measured right before and right after its round. On a quiet machine
the rounds agree within about 0.01.

``.`` stands for the working tree; any other name is checked out into a
temporary git worktree (removed afterwards). Every revision must use the
database schema of the working tree, which creates the scratch database.
Options: ``--rounds N`` (default 6), ``--figure one|distinct`` (one hot token
over and over, or a new token every call). BENCH_SECONDS and BENCH_WARMUP set
each run's length, as for ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from authsvc.config import Settings

from . import h2grpc_load
from .database import create_database, drop_database, load_signer, populate
from .measure import RunResult
from .rounds import EMPTY, VERIFY
from .runner import say
from .scenarios import ACTIVE, mint, user_grant, verify_request
from .servers import ServerProcess, authsvc_env, start_authsvc, start_empty
from .settings import BenchConfig

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE, LOAD_CORE = "0", "1"
#: Distinct tokens a pinned worker could use up in one second, with room to spare.
DISTINCT_PER_SECOND = 5_000


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def _pin(server: ServerProcess) -> None:
    """Every thread of the server, and of any child, on the server's core."""
    found = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=False)
    children = found.stdout.split()  # none for a lone server: pgrep then exits 1
    for pid in [str(server.pid), *children]:
        subprocess.run(["taskset", "-a", "-p", "-c", SERVER_CORE, pid], capture_output=True, check=True)


def _start(rev: str, source: Path, url: str, kek: str, workdir: Path) -> ServerProcess:
    # The revision's own server and client package, ahead of the installed ones.
    path = os.pathsep.join([str(source), str(source / "clients" / "python")])
    name = "ab-" + "".join(c if c.isalnum() else "_" for c in rev)
    server = start_authsvc(url, kek, workdir, name=name, env={"PYTHONPATH": path})
    _pin(server)
    return server


async def main(revs: list[str], rounds: int, figure: str) -> None:
    cfg = BenchConfig.from_env()
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        raise SystemExit("bench.ab: needs two cores and taskset (util-linux)")
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-ab-"))
    h2grpc = h2grpc_load.build(workdir)
    if h2grpc is None:
        raise SystemExit("bench.ab: cannot build h2grpc (gcc and Debian's libnghttp2-dev)")
    sources: dict[str, Path] = {}
    for n, rev in enumerate(revs):
        if rev == ".":
            sources[rev] = ROOT
        else:
            sources[rev] = workdir / f"rev{n}"
            _git("worktree", "add", "--detach", str(sources[rev]), rev)
    kek = "bench:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    url = await create_database(cfg.admin_url, "authsvc_ab")
    servers: dict[str, ServerProcess] = {}
    try:
        settings = Settings.from_env(authsvc_env(url, kek))
        await populate(url, settings.argon2, users=4)
        for rev, source in sources.items():
            servers[rev] = _start(rev, source, url, kek, workdir)
        empty = start_empty(workdir)
        servers["empty RPC"] = empty
        _pin(empty)
        signer = await load_signer(url, kek, settings.policy.issuer, settings.policy.access_ttl)
        one = [verify_request(mint(signer, [user_grant()])[0])]

        def load(name: str, server: ServerProcess, path: str, bodies: list[bytes], expect: bytes) -> RunResult:
            return h2grpc_load.run(
                h2grpc, name, server.port, path, bodies, cycle=figure == "one" or path == EMPTY, expect=expect,
                connections=cfg.connections, concurrency=cfg.concurrency, warmup=cfg.warmup, seconds=cfg.seconds,
                workdir=workdir, server_cpu=lambda: 0.0, prefix=["taskset", "-c", LOAD_CORE],
            )  # fmt: skip

        ratios: dict[str, list[float]] = {rev: [] for rev in revs}
        commits = {r: _git("rev-parse", "--short", "HEAD" if r == "." else r) for r in revs}
        say(f"{figure}: " + ", ".join(f"{r} ({commits[r]})" for r in revs))
        for n in range(1, rounds + 1):
            before = load("empty RPC", empty, EMPTY, [b""], b"").rate
            rates: dict[str, float] = {}
            for rev in revs:
                bodies = one
                if figure == "distinct":
                    count = int(DISTINCT_PER_SECOND * (cfg.warmup + cfg.seconds + 1))
                    bodies = [verify_request(t) for t in mint(signer, [user_grant() for _ in range(count)])]
                rates[rev] = load(rev, servers[rev], VERIFY, bodies, ACTIVE).rate
            ceiling = (before + load("empty RPC", empty, EMPTY, [b""], b"").rate) / 2
            for rev in revs:
                ratios[rev].append(rates[rev] / ceiling)
            say(f"round {n}: empty RPC {ceiling:,.0f}/s; " + ", ".join(f"{r} {rates[r] / ceiling:.3f}x" for r in revs))
        print(f"\nVerify, {figure}, against the empty RPC ({rounds} rounds, one pinned worker each):")
        for rev in revs:
            values = ratios[rev]
            low, high = min(values), max(values)
            print(f"  {rev:>16}: median {statistics.median(values):.3f}x  (min {low:.3f}, max {high:.3f})")
    finally:
        for server in servers.values():
            server.stop()
        await drop_database(cfg.admin_url, url)
        for rev, source in sources.items():
            if rev != ".":
                _git("worktree", "remove", "--force", str(source))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("revs", nargs="+", metavar="REV", help="git revisions; . is the working tree")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--figure", choices=("one", "distinct"), default="one")
    args = parser.parse_args()
    asyncio.run(main(args.revs, args.rounds, args.figure))
