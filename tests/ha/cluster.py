"""A real Patroni cluster for the HA tests: Debian's etcd as its store and
two PostgreSQL 15 nodes on localhost with synchronous replication, each
node's Patroni its own process (scripts/ha-deps.sh installs them).

Postgres refuses to run as root, so under root every cluster process runs as
the ``postgres`` OS user, in a folder it owns. Everything is polled with a
deadline; nothing waits a fixed time for the cluster to be ready."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..pgbouncer import free_port

BIN_DIR = "/usr/lib/postgresql/15/bin"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
PATRONI = shutil.which("patroni") or "/usr/bin/patroni"
PATRONICTL = shutil.which("patronictl") or "/usr/bin/patronictl"
START_TIMEOUT = 180.0  # seconds: initdb, a base backup and two Patroni loops on a busy machine
T = TypeVar("T")


def until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``probe`` until it gives something, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(interval)


def _get(url: str, timeout: float = 2.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


@dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def config(self) -> Path:
        return self.home / "patroni.yml"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def status(self) -> Any:
        """Patroni's own view of this node (GET /patroni), or None."""
        return _get(f"http://127.0.0.1:{self.api_port}/patroni")


class Cluster:
    """Start with ``with Cluster() as c:``; ``c.url(db)`` is the multi-host URL."""

    def __init__(self, nodes: int = 2) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="authsvc-ha-", dir="/tmp"))
        self.scope = "authsvc-ha-" + secrets.token_hex(3)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self._run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self.base.chmod(0o755)
        self.etcd_port, self._etcd_peer = free_port(), free_port()
        self.nodes = [Node(f"node{i}", free_port(), free_port(), self.base / f"node{i}") for i in range(nodes)]

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self._start_etcd()
            for node in self.nodes:
                self._start_patroni(node)
            self.wait_ready(START_TIMEOUT)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in [n.name for n in self.nodes] + ["etcd"]:
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for node in self.nodes:  # a postmaster Patroni did not get to stop
            pid = node.postmaster_pid()
            if pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if not os.environ.get("AUTHSVC_HA_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)

    def _spawn(self, name: str, argv: list[str], log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "VIRTUAL_ENV", "PYTHON"))}
        env["HOME"] = str(self.base)
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        with log.open("ab") as out:
            self._procs[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.base, **self._run_as
            )

    def _owned_dir(self, path: Path) -> Path:
        path.mkdir(mode=0o700)
        if self._run_as:
            os.chown(path, self._run_as["user"], self._run_as["group"])
        return path

    def _start_etcd(self) -> None:
        data = self._owned_dir(self.base / "etcd")
        client, peer = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{self._etcd_peer}"
        argv = [
            ETCD, "--name", "ha", "--data-dir", str(data),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"ha={peer}", "--initial-cluster-token", self.scope,
        ]  # fmt: skip
        self._spawn("etcd", argv, self.base / "etcd.log")
        until(lambda: (_get(f"{client}/health") or {}).get("health") == "true", 60, "etcd healthy")

    def _start_patroni(self, node: Node) -> None:
        self._owned_dir(node.home)
        # JSON is YAML. Timings are short so a failover takes seconds, not
        # half a minute; primary_start_timeout 0 makes a crashed primary's own
        # Patroni hand over to the synchronous standby instead of restarting it.
        config = {
            "scope": self.scope,
            "namespace": "/authsvc-test/",
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{node.api_port}", "connect_address": f"127.0.0.1:{node.api_port}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    "ttl": 10,
                    "loop_wait": 1,
                    "retry_timeout": 3,
                    "primary_start_timeout": 0,
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "max_wal_senders": 5,
                            "max_replication_slots": 5,
                            "wal_keep_size": "256MB",
                            "max_connections": 200,
                            "shared_preload_libraries": "pg_stat_statements",
                            "pg_stat_statements.track": "all",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data),
                "bin_dir": BIN_DIR,
                "pgpass": str(node.home / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": secrets.token_hex(8)},
                    "replication": {"username": "replicator", "password": secrets.token_hex(8)},
                },
                "parameters": {
                    "unix_socket_directories": str(node.home),
                    "logging_collector": "on",
                    "log_directory": str(node.home / "log"),
                    "log_min_messages": "warning",
                    "fsync": "off",  # a test machine's disk; replication, not fsync, is what is tested
                },
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
            },
        }
        node.config.write_text(json.dumps(config, indent=1))
        if self._run_as:
            os.chown(node.config, self._run_as["user"], self._run_as["group"])
        self._spawn(node.name, [PATRONI, str(node.config)], node.home / "patroni.log")

    # --- views -------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]] | None:
        """GET /cluster from whichever node answers."""
        for node in self.nodes:
            found = _get(f"http://127.0.0.1:{node.api_port}/cluster")
            if found and "members" in found:
                return list(found["members"])
        return None

    def leader(self) -> Node | None:
        for member in self.members() or []:
            if member.get("role") == "leader" and member.get("state") == "running":
                return self.node(member["name"])
        return None

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def ready(self) -> tuple[Node, Node] | None:
        """(leader, synchronous standby) when both run and the standby streams
        with nothing left to replay; else None."""
        members = self.members() or []
        leader = [m for m in members if m.get("role") == "leader" and m.get("state") == "running"]
        sync = [
            m
            for m in members
            if m.get("role") == "sync_standby" and m.get("state") in ("running", "streaming") and m.get("lag") == 0
        ]
        if len(leader) == 1 and len(sync) == 1 and not any(n.status() is None for n in self.nodes):
            return self.node(leader[0]["name"]), self.node(sync[0]["name"])
        return None

    def wait_ready(self, timeout: float = 120.0) -> tuple[Node, Node]:
        try:
            return until(self.ready, timeout, "a leader and a streaming synchronous standby", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.members()}\n{self.logs()}") from None

    def url(self, database: str) -> str:
        """Every node, the primary wanted: what authsvc is given."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def direct_url(self, node: Node, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{node.pg_port}/{database}"

    def logs(self, lines: int = 40) -> str:
        out = []
        for path in [self.base / "etcd.log", *(n.home / "patroni.log" for n in self.nodes)]:
            with contextlib.suppress(OSError):
                tail = "\n".join(path.read_text().splitlines()[-lines:])
                out.append(f"--- {path.parent.name}/{path.name}\n{tail}")
        return "\n".join(out)

    # --- faults and operations ---------------------------------------------------------

    def kill_postmaster(self, node: Node) -> None:
        """SIGKILL the node's postmaster: a crash, its backends orphaned."""
        pid = node.postmaster_pid()
        assert pid is not None, f"{node.name} has no postmaster.pid"
        os.kill(pid, signal.SIGKILL)

    def patronictl(self, *args: str) -> str:
        """Run patronictl against this cluster; its output."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "VIRTUAL_ENV", "PYTHON"))}
        env["HOME"] = str(self.base)
        # As ourselves: patronictl only talks to etcd and the REST API. (A
        # user switch would also rule out vfork, and forking a process full
        # of gRPC threads has crashed the child.)
        done = subprocess.run(
            [PATRONICTL, "-c", str(self.nodes[0].config), *args],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        assert done.returncode == 0, f"patronictl {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def set_paused(self, paused: bool) -> None:
        """Maintenance mode on or off, and wait until every node says so."""
        self.patronictl("pause" if paused else "resume", self.scope)
        until(
            lambda: all(bool((n.status() or {}).get("pause")) == paused for n in self.nodes),
            60,
            f"every node {'paused' if paused else 'resumed'}",
        )
