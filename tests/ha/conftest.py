"""The HA suite's fixtures: one Patroni cluster for the module, three
`authsvc serve` replicas on it (separate processes), users to log in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from authsvc.domain.identity import credentials
from authsvc.domain.identity.passwords import Argon2Params, Passwords
from authsvc.store.postgres import PostgresStore

from ..e2e.procs import server_env, serving
from .cluster import Cluster

PASSWORD = "correct horse battery staple"
#: Cheap hashing: the load is about the database, not argon2 on two shared cores.
ARGON2 = {"AUTHSVC_ARGON2_TIME_COST": "1", "AUTHSVC_ARGON2_MEMORY_KIB": "64"}
STALENESS = 4  # seconds: AUTHSVC_VERIFY_MAX_STALENESS of the replicas
RECONCILE_MS = 200


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with Cluster() as running:
        yield running


async def create_database(cluster: Cluster, name: str) -> str:
    """Create it on the primary and wait until the standby has replayed it:
    a multi-host connect that meets a standby without the database stops
    there (asyncpg moves to the next host only for refusals, not for that)."""
    leader, standby = await asyncio.to_thread(cluster.wait_ready)
    conn = await asyncpg.connect(cluster.direct_url(leader, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    replica = await asyncpg.connect(cluster.direct_url(standby, "postgres"))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not await replica.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            assert asyncio.get_running_loop().time() < deadline, f"the standby never replayed CREATE DATABASE {name}"
            await asyncio.sleep(0.05)
    finally:
        await replica.close()
    return cluster.url(name)


@dataclass
class System:
    cluster: Cluster
    url: str
    addresses: list[str]
    users: list[tuple[str, str]]
    client: tuple[str, str]
    logs: list[Path]


@pytest.fixture(scope="module")
async def system(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    url = await create_database(cluster, "authsvc")
    store = await PostgresStore.connect(url, min_size=1, max_size=2)
    passwords = Passwords(Argon2Params(time_cost=1, memory_kib=64, parallelism=1))
    try:
        await store.migrate()
        now = __import__("time").time()
        users = []
        for i in range(100):
            name = f"ha-user-{i}"
            await store.create_user(name, await passwords.hash_async(PASSWORD), ["read"], ["orders"], now)
            users.append((name, PASSWORD))
        client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
        await store.create_client(client_id, "ha-svc", credentials.digest(secret), ["orders.read"], ["orders"], now)
    finally:
        await store.close()
        passwords.close()
    tmp = tmp_path_factory.mktemp("replicas")
    env_extra = {
        **ARGON2,
        "AUTHSVC_RECONCILE_MS": str(RECONCILE_MS),
        "AUTHSVC_VERIFY_MAX_STALENESS": str(STALENESS),
        "AUTHSVC_REFRESH_GRACE": "60",  # a refresh retried after a lost answer gets the same pair
        "AUTHSVC_REFRESH_MIN_INTERVAL": "0",
        "AUTHSVC_ACCESS_TOKEN_TTL": "3600",
        "AUTHSVC_LOGIN_MAX_FAILURES": "1000",
        "AUTHSVC_PEER_MAX_ATTEMPTS": "1000000",
        "AUTHSVC_LOG_LEVEL": "WARNING",
    }
    with contextlib.ExitStack() as stack:
        addresses, logs = [], []
        for i in range(3):
            log = tmp / f"replica{i}.log"
            env = server_env(url, tmp / f"data{i}", **env_extra)
            _proc, address = stack.enter_context(serving(env, log))
            addresses.append(address)
            logs.append(log)
        yield System(cluster, url, addresses, users, (client_id, secret), logs)
