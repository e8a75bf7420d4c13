"""LISTEN for revocation notices: a latency shortcut only. Readers reconcile
by cursor on a timer too, so a lost notice or a lost connection costs at most
one interval, and engines without LISTEN still work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

import asyncpg

from authsvc.store._base import connect_options

log = logging.getLogger(__name__)

# What ends a listening session: the server went away, or (multi-host URL,
# mid-failover) no host is the primary yet; either way, try again later.
_LOST = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


class Listener:
    def __init__(self, dsn: str, channels: Mapping[str, Callable[[], None]], retry_seconds: float = 2.0) -> None:
        self._dsn = dsn
        self._channels = dict(channels)
        self._retry = retry_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="revocation-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                # The primary's: notifications are not replicated to standbys.
                conn = await asyncpg.connect(self._dsn, **connect_options(self._dsn))
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel, callback in self._channels.items():
                    await conn.add_listener(channel, lambda *_args, cb=callback: cb())
                # Notices sent while we were away are lost: catch up once now.
                for callback in self._channels.values():
                    callback()
                await lost.wait()
            except _LOST as exc:
                log.warning("revocation listener disconnected: %s", type(exc).__name__)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=5)  # bounded: a stop must not wait on a dead server
            await asyncio.sleep(self._retry)
