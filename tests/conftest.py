"""Fixtures: one database per test run (created and dropped), and an
in-process authsvc on a free port whose clock the tests control."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from authsvc.config import Settings
from authsvc.domain.identity.passwords import Passwords
from authsvc.server import App
from authsvc.store.postgres import PostgresStore
from authsvc_client import grpc as pb_grpc

from .support import FakeClock, create_database, drop_database, server_url

TEST_KEK = "t1:" + "A" * 43  # 32 zero bytes: tests only


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    with server_url() as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(admin_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_url)
    try:
        yield url
    finally:
        await drop_database(admin_url, url)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    env = {"AUTHSVC_LISTEN": "127.0.0.1:0", "AUTHSVC_KEK": TEST_KEK, "AUTHSVC_ISSUER": "authsvc-test"}
    base = Settings.from_env(env)
    return dataclasses.replace(base, data_dir=Path(tmp_path_factory.mktemp("data")), shutdown_grace=1.0)


@pytest.fixture(scope="session")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
async def app(settings: Settings, database_url: str, clock: FakeClock) -> AsyncIterator[App]:
    async with App(settings, database_url, clock=clock) as app:
        yield app


@pytest.fixture(scope="session")
async def store(app: App) -> PostgresStore:
    assert app.deps is not None
    return app.deps.store  # type: ignore[return-value]


@pytest.fixture(scope="session")
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> pb_grpc.AuthServiceAsyncStub:
    return pb_grpc.AuthServiceStub(channel)


@pytest.fixture(scope="session")
def passwords() -> Iterator[Passwords]:
    p = Passwords()
    yield p
    p.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
