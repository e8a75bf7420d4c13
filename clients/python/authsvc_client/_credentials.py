"""Call credentials for a service's outgoing calls: an access token obtained
with client credentials (Issue), cached, and refreshed before it expires.

The token is renewed at about 80% of its lifetime (``refresh_at`` with
``jitter``, so that replicas do not all come back at once). Until it expires
the old token keeps serving while one refresh runs; however many calls wait,
only one Issue is in flight. Call credentials travel only over secure
channels: TLS, or ``grpc.local_channel_credentials()`` on loopback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from ._aio_client import AsyncAuthClient
from ._client import AuthClient
from ._models import ClientCredential, TokenPair

log = logging.getLogger(__name__)

#: After a failed refresh while the old token still works, wait this long
#: (at most) before trying again.
_RETRY_AFTER_FAILURE = 5.0


@dataclass(frozen=True, slots=True)
class _Held:
    token: str
    refresh_at: float
    expires_at: float


class _Schedule:
    def __init__(
        self,
        clock: Callable[[], float],
        refresh_at: float,
        jitter: float,
        rng: random.Random | None,
    ) -> None:
        if not 0 < refresh_at < 1 or not 0 <= jitter < min(refresh_at, 1 - refresh_at):
            raise ValueError("refresh_at must be in (0, 1) and jitter keep it there")
        self.clock = clock
        self._fraction = refresh_at
        self._jitter = jitter
        self._rng = rng or random.Random()

    def hold(self, pair: TokenPair, obtained: float) -> _Held:
        fraction = self._fraction + self._rng.uniform(-self._jitter, self._jitter)
        return _Held(pair.access_token, obtained + pair.expires_in * fraction, obtained + pair.expires_in)

    def postpone(self, held: _Held, now: float) -> _Held:
        """After a failed refresh: keep the token, try again a little later."""
        retry_at = min(now + _RETRY_AFTER_FAILURE, now + (held.expires_at - now) / 2)
        return _Held(held.token, retry_at, held.expires_at)


def _name(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return code.name if isinstance(code, grpc.StatusCode) else type(exc).__name__


def _retrieve(task: asyncio.Future[str]) -> None:
    """Mark a background refresh's failure as seen: its waiters (if any) get it."""
    if not task.cancelled():
        task.exception()


def _metadata(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


class ClientCredentialsAuth:
    """Tokens for a service client, over a synchronous :class:`AuthClient`.

    Use :meth:`call_credentials` with ``grpc.composite_channel_credentials``
    (or per call), or :meth:`token` directly. Thread-safe."""

    def __init__(
        self,
        client: AuthClient,
        client_id: str,
        client_secret: str,
        *,
        audience: Sequence[str] = (),
        scope: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        refresh_at: float = 0.8,
        jitter: float = 0.05,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._credential = ClientCredential(client_id, client_secret)
        self._audience, self._scope = tuple(audience), tuple(scope)
        self._schedule = _Schedule(clock, refresh_at, jitter, rng)
        self._held: _Held | None = None
        self._refreshing = threading.Lock()

    def token(self) -> str:
        """A current access token; Issue is called only when due."""
        held, now = self._held, self._schedule.clock()
        if held is not None and now < held.refresh_at:
            return held.token
        usable = held is not None and now < held.expires_at
        # With a usable token nobody waits: whoever gets the lock refreshes,
        # everyone else goes on with the old token.
        if not self._refreshing.acquire(blocking=not usable):
            assert held is not None
            return held.token
        try:
            held, now = self._held, self._schedule.clock()
            if held is not None and now < held.refresh_at:
                return held.token  # refreshed while we waited for the lock
            try:
                pair = self._client.issue(self._credential, audience=self._audience, scope=self._scope)
            except Exception as exc:
                if held is None or now >= held.expires_at:
                    raise
                log.warning("token refresh failed (%s); the current token serves until it expires", _name(exc))
                self._held = self._schedule.postpone(held, now)
                return held.token
            self._held = self._schedule.hold(pair, now)
            return self._held.token
        finally:
            self._refreshing.release()

    def call_credentials(self) -> grpc.CallCredentials:
        return grpc.metadata_call_credentials(_SyncPlugin(self), name="authsvc-client-credentials")


class _SyncPlugin(grpc.AuthMetadataPlugin):
    def __init__(self, auth: ClientCredentialsAuth) -> None:
        self._auth = auth

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        # gRPC runs plugins on its own threads, so blocking here is allowed.
        try:
            token = self._auth.token()
        except Exception as exc:  # noqa: BLE001 - handed to gRPC, which fails the call
            callback((), exc)
            return
        callback(_metadata(token), None)


class AsyncClientCredentialsAuth:
    """Tokens for a service client, over an :class:`AsyncAuthClient`; the same
    policy as :class:`ClientCredentialsAuth`, with one refresh task."""

    def __init__(
        self,
        client: AsyncAuthClient,
        client_id: str,
        client_secret: str,
        *,
        audience: Sequence[str] = (),
        scope: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        refresh_at: float = 0.8,
        jitter: float = 0.05,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._credential = ClientCredential(client_id, client_secret)
        self._audience, self._scope = tuple(audience), tuple(scope)
        self._schedule = _Schedule(clock, refresh_at, jitter, rng)
        self._held: _Held | None = None
        self._refreshing: asyncio.Task[str] | None = None

    async def token(self) -> str:
        held, now = self._held, self._schedule.clock()
        if held is not None and now < held.refresh_at:
            return held.token
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(_retrieve)
        if held is not None and now < held.expires_at:
            return held.token  # the refresh goes on in the background
        # Shielded: one caller giving up must not cancel the others' refresh.
        return await asyncio.shield(self._refreshing)

    async def _refresh(self) -> str:
        try:
            pair = await self._client.issue(self._credential, audience=self._audience, scope=self._scope)
        except Exception as exc:
            held, now = self._held, self._schedule.clock()
            if held is None or now >= held.expires_at:
                raise
            log.warning("token refresh failed (%s); the current token serves until it expires", _name(exc))
            self._held = self._schedule.postpone(held, now)
            return held.token
        self._held = self._schedule.hold(pair, self._schedule.clock())
        return self._held.token

    def call_credentials(self, loop: asyncio.AbstractEventLoop | None = None) -> grpc.CallCredentials:
        """For channels of ``loop`` (default: the running one). gRPC asks for
        metadata on its own thread; the token comes from this loop."""
        return grpc.metadata_call_credentials(
            _AsyncPlugin(self, loop or asyncio.get_running_loop()), name="authsvc-client-credentials"
        )


class _AsyncPlugin(grpc.AuthMetadataPlugin):
    def __init__(self, auth: AsyncClientCredentialsAuth, loop: asyncio.AbstractEventLoop) -> None:
        self._auth = auth
        self._loop = loop

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        def done(future: concurrent.futures.Future[str]) -> None:
            if future.cancelled():
                callback((), RuntimeError("token request cancelled"))
            elif (error := future.exception()) is not None:
                callback((), error if isinstance(error, Exception) else RuntimeError("token request failed"))
            else:
                callback(_metadata(future.result()), None)

        # gRPC asks on its own thread; the token comes from the client's loop.
        asyncio.run_coroutine_threadsafe(self._auth.token(), self._loop).add_done_callback(done)
