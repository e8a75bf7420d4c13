"""Fixtures of the AdminService tests (the server's are in tests/conftest.py)."""

from __future__ import annotations

import grpc
import pytest

from authsvc_client import admin_grpc

from .admin_support import admin_metadata, admin_user


@pytest.fixture(scope="session")
def admin(channel: grpc.aio.Channel) -> admin_grpc.AdminServiceAsyncStub:
    return admin_grpc.AdminServiceStub(channel)


@pytest.fixture
async def as_admin(stub, store, passwords, clock) -> tuple[tuple[str, str], ...]:
    """Call metadata of an admin user who has just logged in."""
    return await admin_metadata(stub, await admin_user(store, passwords, clock))
