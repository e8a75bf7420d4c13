"""Shared test helpers: a fake clock and database set-up."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class FakeClock:
    """Starts at the real time (so rows look sane) and moves only when told."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def server_url() -> Iterator[str]:
    """A Postgres admin URL: AUTHSVC_TEST_DATABASE_URL, else the local server on
    127.0.0.1:5432 when it answers, else an embedded one (pgserver)."""
    url = os.environ.get("AUTHSVC_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _answers("127.0.0.1", 5432):
        yield LOCAL_URL
        return
    import tempfile

    import pgserver

    with tempfile.TemporaryDirectory() as tmp:
        server: Any = pgserver.get_server(tmp, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def create_database(admin_url: str, prefix: str = "authsvc_test") -> str:
    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
