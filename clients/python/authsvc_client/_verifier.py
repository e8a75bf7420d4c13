"""TokenVerifier: local access-token verification for a service that trusts authsvc.

Signatures are checked with the published keys (GetJWKS), revocations arrive
through WatchRevocations, and the rules are :func:`verify_access_token`'s, the
same as the server's Verify. An unknown ``kid`` refreshes the key set at most
once per ``key_refresh_interval``, then fails closed (``UNKNOWN_KEY``). When the
revocation stream has been down longer than ``max_staleness`` the verifier
either asks authsvc (``on_stale="verify_rpc"``) or refuses to decide
(``"fail_closed"``, the default) with :class:`VerifierUnavailable`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ._aio_client import AsyncAuthClient
from ._cache import ClaimsCache
from ._errors import AuthsvcError, VerifierUnavailable
from ._keys import KeySet
from ._models import RevocationEvent
from ._retry import RetryPolicy
from ._revocations import RevocationSet
from ._txn import TxnClaims, TxnRequirements, verify_txn_token
from ._verify import (
    DEFAULT_LEEWAY_SECONDS,
    MAX_LEEWAY_SECONDS,
    AccessClaims,
    Reason,
    Requirements,
    TokenRejected,
    check_claims,
    verify_access_token,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")
OnStale = Literal["verify_rpc", "fail_closed"]
JwksFetch = Callable[[], Awaitable[str]]
ClientSource = AsyncAuthClient | Callable[[], AsyncAuthClient]

_PRUNE_INTERVAL = 60.0  # seconds between sweeps of expired revocations


@dataclass(frozen=True, slots=True)
class VerifierStats:
    """A snapshot, for metrics and tests."""

    cached: int  # tokens in the cache
    hits: int  # verifications answered from the cache (rules still applied)
    misses: int  # verifications that checked a signature
    key_fetches: int  # JWKS fetches attempted, the first included
    revocations: int  # entries in the local revocation set
    cursor: int  # where the revocation stream resumes
    stream_up: bool
    stale: bool  # True: verify() follows the on_stale policy


class TokenVerifier:
    """Verify access tokens locally. Use from one event loop::

        verifier = TokenVerifier(AsyncAuthClient(channel), issuer="authsvc")
        await verifier.start()
        claims = await verifier.verify(token, Requirements(audience="orders", scopes=("orders.read",)))
        await verifier.close()

    ``client`` is an :class:`AsyncAuthClient`, or a factory called inside
    :meth:`start` (so that the channel is made on the verifier's loop; needed
    with :meth:`start_in_thread`); a client made by a factory is closed by
    :meth:`close`. ``fetch_jwks`` replaces GetJWKS as the key source.
    ``clock`` gives seconds since the epoch and drives every time rule.
    ``decryption_keys`` (kid -> jwcrypto JWK) opens nested tokens encrypted
    to this service's audience (needs the ``jwe`` extra). ``on_revocation`` is
    called with every revocation event applied (metrics, logs, tests).
    :meth:`verify_txn` checks Transaction Tokens with the same keys and the
    same revocations.
    """

    def __init__(
        self,
        client: ClientSource | None = None,
        *,
        issuer: str,
        fetch_jwks: JwksFetch | None = None,
        clock: Callable[[], float] = time.time,
        leeway: int = DEFAULT_LEEWAY_SECONDS,
        key_refresh_interval: float = 30.0,
        keys_max_age: float = 300.0,
        watch_revocations: bool = True,
        max_staleness: float = 30.0,
        on_stale: OnStale = "fail_closed",
        cache_size: int = 10_000,
        reconnect_backoff: tuple[float, float] = (0.5, 30.0),
        rng: random.Random | None = None,
        decryption_keys: Mapping[str, Any] | None = None,
        on_revocation: Callable[[RevocationEvent], None] | None = None,
    ) -> None:
        if not issuer:
            raise ValueError("an issuer is required")
        if client is None and (fetch_jwks is None or watch_revocations or on_stale == "verify_rpc"):
            raise ValueError("a client is needed to fetch keys, watch revocations or call Verify")
        if on_stale not in ("verify_rpc", "fail_closed"):
            raise ValueError("on_stale must be 'verify_rpc' or 'fail_closed'")
        self._client = client if isinstance(client, AsyncAuthClient) else None
        self._factory = None if isinstance(client, AsyncAuthClient) else client
        self._issuer = issuer
        self._fetch_jwks = fetch_jwks
        self._clock = clock
        self._leeway = leeway
        self._key_refresh_interval = key_refresh_interval
        self._keys_max_age = keys_max_age
        self._watching = watch_revocations
        self._max_staleness = max_staleness
        self._on_stale = on_stale
        self._reconnect = RetryPolicy(initial_backoff=reconnect_backoff[0], max_backoff=reconnect_backoff[1])
        self._rng = rng or random.Random()
        self._decryption_keys = decryption_keys
        self._on_revocation = on_revocation

        self._keys = KeySet()
        self._keys_at: float | None = None  # when the key set was last fetched
        self._key_attempt_at: float | None = None  # last fetch attempt, for rate limits
        self._kid_refresh_at: float | None = None  # last refresh for an unknown kid
        self._key_task: asyncio.Future[bool] | None = None
        self._key_fetches = 0

        self._cache = ClaimsCache(cache_size)
        self._hits = self._misses = 0
        self._revocations = RevocationSet()
        self._cursor = 0
        self._pruned_at = 0.0
        self._stream_up = False
        self._down_since: float | None = None  # None and not up: never in sync yet
        self._incompatible = False
        self._retry = 0
        self._up = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------

    async def start(self, *, wait: float | None = 5.0) -> None:
        """Fetch the keys and start following revocations; wait up to ``wait``
        seconds for the stream to open (verify() is stale until it has)."""
        if self._loop is not None:
            raise RuntimeError("the verifier was started already")
        self._loop = asyncio.get_running_loop()
        if self._factory is not None:
            self._client = self._factory()
        await self._refresh_keys()
        if self._watching:
            self._watch_task = asyncio.create_task(self._watch(), name="authsvc-revocations")
            if wait:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._up.wait(), wait)

    async def close(self) -> None:
        for task in (self._watch_task, self._key_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._factory is not None and self._client is not None:
            await self._client.close()

    def start_in_thread(self, *, wait: float | None = 5.0, timeout: float = 30.0) -> None:
        """Run the verifier on its own event loop in a daemon thread, for
        thread-pool servers: call :meth:`verify_blocking` from any other thread."""
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="authsvc-verifier", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(wait=wait), loop).result(timeout)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            raise

    def close_in_thread(self, timeout: float = 30.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()

    # --- verification ------------------------------------------------------------

    async def verify(self, token: str, requirements: Requirements) -> AccessClaims:
        """The claims of an acceptable token, else :class:`TokenRejected` (the
        token is bad) or :class:`VerifierUnavailable` (no verdict possible now)."""
        if not requirements.audience:
            raise ValueError("an audience is required")
        now = self._clock()
        self._maybe_refresh_keys(now)
        if not self._is_stale(now):
            return await self._verify_local(token, requirements, now)
        if self._on_stale == "fail_closed":
            raise VerifierUnavailable("revocation state is stale")
        # Forgeries, expired and known-revoked tokens are refused here, without a call.
        claims = await self._verify_local(token, requirements, now)
        assert self._client is not None  # checked in __init__
        try:
            result = await self._client.verify(token, requirements)
        except AuthsvcError as exc:
            raise VerifierUnavailable("revocation state is stale and authsvc did not answer") from exc
        if not result.active:
            self._cache.drop(token)
            raise TokenRejected(result.reason or Reason.MALFORMED)
        return claims

    def verify_blocking(self, token: str, requirements: Requirements, timeout: float | None = 10.0) -> AccessClaims:
        """:meth:`verify` from a thread other than the verifier's loop."""
        return self._blocking(lambda: self.verify(token, requirements), timeout)

    async def verify_txn(self, token: str, requirements: TxnRequirements) -> TxnClaims:
        """The claims of an acceptable Transaction Token (:func:`verify_txn_token`'s
        rules, these keys, this revocation set), else :class:`TokenRejected`.
        No Verify RPC takes Txn-Tokens, so a stale revocation state is always
        :class:`VerifierUnavailable`, whatever ``on_stale`` says."""
        if not requirements.trust_domain:
            raise ValueError("a trust domain is required")
        now = self._clock()
        self._maybe_refresh_keys(now)
        if self._is_stale(now):
            raise VerifierUnavailable("revocation state is stale")
        try:
            return self._verify_txn(token, requirements, now)
        except TokenRejected as rejected:
            if rejected.reason is not Reason.UNKNOWN_KEY or not await self._refresh_for_unknown_kid(now):
                raise
        return self._verify_txn(token, requirements, self._clock())

    def verify_txn_blocking(
        self, token: str, requirements: TxnRequirements, timeout: float | None = 10.0
    ) -> TxnClaims:
        """:meth:`verify_txn` from a thread other than the verifier's loop."""
        return self._blocking(lambda: self.verify_txn(token, requirements), timeout)

    def _verify_txn(self, token: str, requirements: TxnRequirements, now: float) -> TxnClaims:
        return verify_txn_token(
            token, keys=self._keys, issuer=self._issuer, requirements=requirements, now=now, leeway=self._leeway,
            is_revoked=self._revocations.is_revoked if self._watching else None,
        )  # fmt: skip

    def _blocking(self, verdict: Callable[[], Coroutine[Any, Any, _T]], timeout: float | None) -> _T:
        loop = self._loop
        if loop is None:
            raise RuntimeError("start the verifier first")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("verify_blocking on the verifier's own loop would deadlock: await verify()")
        future = asyncio.run_coroutine_threadsafe(verdict(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise VerifierUnavailable("verification timed out") from exc

    async def _verify_local(self, token: str, requirements: Requirements, now: float) -> AccessClaims:
        is_revoked = self._revocations.is_revoked if self._watching else None
        claims = self._cache.get(token)
        if claims is not None:
            self._hits += 1
            try:
                # Every rule again, on every hit: a cached entry never loosens one.
                check_claims(claims, issuer=self._issuer, requirements=requirements, now=now, leeway=self._leeway)
                if is_revoked is not None and is_revoked(claims):
                    raise TokenRejected(Reason.REVOKED)
            except TokenRejected as rejected:
                if rejected.reason in (Reason.EXPIRED, Reason.REVOKED):
                    self._cache.drop(token)
                raise
            return claims
        self._misses += 1
        try:
            claims = self._verify_token(token, requirements, now, is_revoked)
        except TokenRejected as rejected:
            if rejected.reason is not Reason.UNKNOWN_KEY or not await self._refresh_for_unknown_kid(now):
                raise
            claims = self._verify_token(token, requirements, self._clock(), is_revoked)
        self._cache.put(token, claims)
        return claims

    def _verify_token(
        self,
        token: str,
        requirements: Requirements,
        now: float,
        is_revoked: Callable[[AccessClaims], bool] | None,
    ) -> AccessClaims:
        return verify_access_token(
            token,
            keys=self._keys,
            issuer=self._issuer,
            requirements=requirements,
            now=now,
            leeway=self._leeway,
            is_revoked=is_revoked,
            decryption_keys=self._decryption_keys,
        )

    # --- keys --------------------------------------------------------------------

    async def _refresh_for_unknown_kid(self, now: float) -> bool:
        """At most one refresh per ``key_refresh_interval`` for unknown kids;
        callers arriving while one is in flight share it."""
        if self._key_task is not None and not self._key_task.done():
            return await asyncio.shield(self._key_task)
        if self._kid_refresh_at is not None and now - self._kid_refresh_at < self._key_refresh_interval:
            return False
        self._kid_refresh_at = now
        return await self._refresh_keys()

    def _maybe_refresh_keys(self, now: float) -> None:
        """Refresh in the background once the key set is older than ``keys_max_age``."""
        if self._keys_at is None or now - self._keys_at < self._keys_max_age:
            return
        if self._key_task is not None and not self._key_task.done():
            return
        if self._key_attempt_at is not None and now - self._key_attempt_at < self._key_refresh_interval:
            return
        self._key_task = asyncio.ensure_future(self._fetch_keys())

    async def _refresh_keys(self) -> bool:
        if self._key_task is None or self._key_task.done():
            self._key_task = asyncio.ensure_future(self._fetch_keys())
        return await asyncio.shield(self._key_task)

    async def _fetch_keys(self) -> bool:
        self._key_fetches += 1
        self._key_attempt_at = self._clock()
        try:
            if self._fetch_jwks is not None:
                text = await self._fetch_jwks()
            else:
                assert self._client is not None
                text = await self._client.get_jwks()
            keys = KeySet.from_jwks(text)
        except Exception as exc:  # noqa: BLE001 - keep the old keys; unknown kids fail closed
            log.warning("authsvc key set refresh failed (%s); keeping %d keys", type(exc).__name__, len(self._keys))
            return False
        # A key withdrawn on the revocation stream stays out, even if this key
        # set came from a replica that had not heard of it yet.
        keys = keys.without(self._revocations.withdrawn_keys)
        if set(self._keys) - set(keys):
            self._cache.clear()  # a key was withdrawn: nothing it signed may stay cached
        self._keys = keys
        self._keys_at = self._clock()
        return True

    # --- revocations -------------------------------------------------------------

    def _is_stale(self, now: float) -> bool:
        if not self._watching:
            return False
        if self._incompatible:
            return True
        if self._stream_up:
            return False
        if self._down_since is None:
            return True  # never in sync yet
        return now - self._down_since > self._max_staleness

    def _mark_up(self) -> None:
        self._stream_up = True
        self._down_since = None
        self._retry = 0
        self._up.set()

    def _mark_down(self) -> None:
        if self._stream_up:
            self._stream_up = False
            self._down_since = self._clock()
            self._up.clear()

    def _apply(self, event: RevocationEvent) -> None:
        if not self._revocations.add(event):
            # A kind this client cannot apply: its revocations would be missed,
            # so the local set can no longer vouch for any token.
            if not self._incompatible:
                log.error("authsvc sent a revocation kind this client does not know; upgrade authsvc-client")
            self._incompatible = True
            return
        if event.kind == "key":
            # A signing key withdrawn: out of the key set, and every token it
            # verified out of the cache, now (not at the next key refresh).
            if event.value in self._keys:
                self._keys = self._keys.without({event.value})
                self._cache.clear()
        else:
            self._cache.drop_revoked(event)
        self._cursor = max(self._cursor, event.resume_cursor)
        if self._on_revocation is not None:
            self._on_revocation(event)
        now = self._clock()
        if now - self._pruned_at > _PRUNE_INTERVAL:
            self._revocations.prune(now - MAX_LEEWAY_SECONDS)  # entries outlive any leeway a verifier may allow
            self._pruned_at = now

    async def _watch(self) -> None:
        assert self._client is not None
        while True:
            try:
                events = self._client.watch_revocations(self._cursor, on_ready=self._mark_up)
                async with contextlib.aclosing(events):
                    async for event in events:
                        self._apply(event)
                log.info("authsvc closed the revocation stream; resuming from %d", self._cursor)
            except AuthsvcError as exc:
                log.info("revocation stream down (%s); resuming from %d", exc.code.name, self._cursor)
            except Exception:
                log.exception("revocation stream failed; resuming from %d", self._cursor)
            self._mark_down()
            self._retry += 1
            await asyncio.sleep(self._reconnect.backoff(self._retry, self._rng))

    # --- introspection -----------------------------------------------------------

    @property
    def stats(self) -> VerifierStats:
        return VerifierStats(
            cached=len(self._cache),
            hits=self._hits,
            misses=self._misses,
            key_fetches=self._key_fetches,
            revocations=len(self._revocations),
            cursor=self._cursor,
            stream_up=self._stream_up,
            stale=self._is_stale(self._clock()),
        )
