"""Fixtures shared by the end-to-end modules."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from authsvc.domain.identity import credentials
from authsvc.store.postgres import PostgresStore

from ..support import create_database, drop_database


@pytest.fixture
async def replica_db(admin_url) -> AsyncIterator[tuple[str, str, str]]:
    """A database with the schema and one service client: (url, client id, secret)."""
    url = await create_database(admin_url, "authsvc_replicas")
    store = await PostgresStore.connect(url, min_size=1, max_size=2)
    try:
        await store.migrate()
        client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
        await store.create_client(client_id, "load", credentials.digest(secret), [], ["orders"], time.time())
    finally:
        await store.close()
    yield url, client_id, secret
    await drop_database(admin_url, url)
