"""The client tests talk to their own in-process authsvc with its own fake
clock, on the session's database: they move time freely without moving the
clock that the rest of the suite shares (and compares with real time)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from authsvc.config import Settings
from authsvc.server import App
from authsvc_client import grpc as pb_grpc

from ..support import FakeClock


@pytest.fixture(scope="session")
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
async def authsvc(settings: Settings, database_url: str, fake_clock: FakeClock) -> AsyncIterator[App]:
    async with App(settings, database_url, clock=fake_clock) as app:
        yield app


@pytest.fixture(scope="session")
async def authsvc_stub(authsvc: App) -> AsyncIterator[pb_grpc.AuthServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{authsvc.port}") as channel:
        yield pb_grpc.AuthServiceStub(channel)
