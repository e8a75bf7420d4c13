"""The state Verify reads without touching the database: the keyring and the
revocation set, brought up to date by :meth:`LiveState.sync`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from authsvc.domain.clock import Clock
from authsvc.domain.models import Revocation
from authsvc.domain.policy import Policy
from authsvc.domain.ports import Store
from authsvc.domain.sessions.revocation_set import RevocationSet
from authsvc.domain.tokens.encryption import Encryptor, generate_own_key
from authsvc.domain.tokens.kek import Kek
from authsvc.domain.tokens.key_rotation import ensure_keys
from authsvc.domain.tokens.signing_keys import Keyring
from authsvc.errors import StoreUnavailable, Throttled
from authsvc_client import AccessClaims, Reason, Requirements, TokenRejected
from authsvc_client._verify import accept, read_access_token

log = logging.getLogger(__name__)

#: Verified tokens kept so a hot token costs a dictionary look-up, not a
#: signature check (about 100 bytes of claims each, beside the token string).
VERIFIED_CACHE_SIZE = 100_000
SYNC_BATCH = 5_000
#: Open WatchRevocations streams per replica: one per service process is the
#: expected use; far more is a leak or an attack.
MAX_WATCHERS = 1_000


class LiveState:
    def __init__(self, keyring: Keyring, encryptor: Encryptor, policy: Policy, clock: Clock) -> None:
        self.keyring = keyring
        #: Seconds from a revocation's commit to this replica applying it (the last batch's newest).
        self.revocation_lag = 0.0
        self.encryptor = encryptor
        self.revocations = RevocationSet()
        self._policy = policy
        self._clock = clock
        self._subscribers: set[asyncio.Queue[Revocation | None]] = set()
        # token -> claims whose signature checked out, oldest first
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()
        self.verified_cache_size = VERIFIED_CACHE_SIZE
        #: Verify answers from memory for this many seconds after the
        #: revocation log was last read (a failover's window, an outage);
        #: past it, revocations made elsewhere could go unseen, so it fails
        #: closed. Real elapsed time, not the token clock: a liveness bound.
        self.max_staleness = 10.0
        #: The monotonic clock that bound is measured on (tests replace it).
        self.monotonic: Callable[[], float] = time.monotonic
        self._read_at = self.monotonic()
        self._held_stale = False
        #: Called when a signing key was withdrawn on the log: the server then
        #: reloads its keys (a new signer, if the withdrawn key was signing).
        self.on_key_withdrawn: Callable[[], None] | None = None

    @classmethod
    async def load(cls, store: Store, kek: Kek, policy: Policy, clock: Clock) -> LiveState:
        """Load the keys (creating the first one if there is none) and every
        revocation that still matters."""
        keyring = await _load_keyring(store, kek, policy, clock)
        state = cls(keyring, await _load_encryptor(store, kek, clock), policy, clock)
        await state.sync_revocations(store)
        return state

    async def sync_revocations(self, store: Store) -> int:
        """Catch up from the revocation log by cursor; give how many were new.
        Reads in batches, so a replica starting on a long log never holds it
        all at once."""
        now = self._clock.now()
        started = self.monotonic()
        count = 0
        while True:
            cursor = self.revocations.cursor
            entries = await store.revocations_after(cursor, self.revocations.gaps, now, SYNC_BATCH)
            fresh = self.revocations.apply(entries, now)
            if fresh:  # how long the newest took to reach this replica, on its clock
                self.revocation_lag = max(0.0, self._clock.now() - max(e.revoked_at for e in fresh))
            if any(e.kind == "key" for e in fresh):
                self._withdraw_keys()
            self._publish(fresh)  # batch by batch: a long catch-up is never held whole
            count += len(fresh)
            if sum(e.seq > cursor for e in entries) < SYNC_BATCH:
                break
        self.revocations.prune(now)
        self._read_at = started  # everything revoked before then is in memory
        if count:
            log.debug("applied %d revocations (cursor %d)", count, self.revocations.cursor)
        return count

    def apply_local(self, entries: list[Revocation]) -> None:
        """Entries this replica has just committed to the log: in the set and
        out to the watchers now. Others' entries with lower numbers that are
        not here yet become gaps, which the next sync fills (see
        revocation_set.py), as for any entry seen out of order."""
        fresh = self.revocations.apply(entries, self._clock.now())
        if any(e.kind == "key" for e in fresh):
            self._withdraw_keys()
        self._publish(fresh)

    def _withdraw_keys(self) -> None:
        """A key left: out of the keyring and the JWKS, and nothing it signed
        stays verified, before any watcher hears of it."""
        keyring = self.keyring.without(self.revocations.withdrawn_keys)
        if keyring is not self.keyring:
            self.keyring = keyring
            self._verified.clear()
        if self.on_key_withdrawn is not None:
            self.on_key_withdrawn()

    def _publish(self, fresh: list[Revocation]) -> None:
        for queue in list(self._subscribers):
            for entry in fresh:
                try:
                    queue.put_nowait(entry)
                except asyncio.QueueFull:
                    # A watcher that cannot keep up is cut off; it resumes
                    # from its cursor, so nothing is lost.
                    self._subscribers.discard(queue)
                    queue.get_nowait()
                    queue.put_nowait(None)
                    break

    @property
    def current(self) -> bool:
        """Whether the revocation set is recent enough to answer Verify from."""
        return not self._held_stale and self.monotonic() - self._read_at <= self.max_staleness

    @current.setter
    def current(self, value: bool) -> None:
        """``False`` holds the state stale whatever the reads do (until set
        ``True`` again): fail closed on purpose, as tests of it do."""
        self._held_stale = not value

    @property
    def low_water(self) -> int:
        """Every revocation up to this sequence number is in memory."""
        gaps = self.revocations.gaps
        return gaps[0] - 1 if gaps else self.revocations.cursor

    def subscribe(self, maxsize: int = 10_000) -> asyncio.Queue[Revocation | None]:
        """New revocations as they are applied; ``None`` means the stream ends.
        Refused (Throttled) past MAX_WATCHERS: each one holds a queue."""
        if len(self._subscribers) >= MAX_WATCHERS:
            raise Throttled(5.0, "too many revocation watchers, retry later")
        queue: asyncio.Queue[Revocation | None] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Revocation | None]) -> None:
        self._subscribers.discard(queue)

    def close_subscribers(self) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()

    async def reload_keys(self, store: Store, kek: Kek) -> None:
        keyring = (await _load_keyring(store, kek, self._policy, self._clock)).without(
            self.revocations.withdrawn_keys
        )
        if keyring.kids != self.keyring.kids:
            self._verified.clear()  # a key left: nothing it signed may stay verified
        self.keyring = keyring
        self.encryptor = await _load_encryptor(store, kek, self._clock)

    def verify(self, token: str, requirements: Requirements) -> AccessClaims:
        """Verify's hot path: memory only, no I/O. A token whose signature was
        checked once is looked up, not checked again; the rules that depend on
        the moment and the caller (time, audience, scopes, binding, auth age,
        revocation) run on every call all the same."""
        if not self.current:
            raise StoreUnavailable()  # fail closed: we cannot vouch for revocations
        if not requirements.require_encrypted and (
            self._policy.require_encrypted or requirements.audience in self.encryptor.required_audiences
        ):
            requirements = replace(requirements, require_encrypted=True)  # the deployment's or the audience's rule
        claims = self._verified.get(token)
        if claims is None:
            # Without raw: Verify answers with the registered claims only, and
            # each of the cache's entries is then one object for the collector
            # to walk, not four (its full walks paused the loop ~100 ms).
            claims = read_access_token(
                token, self.keyring.verification_keys, self.encryptor.decryption_keys, keep_raw=False
            )
            self._remember(token, claims)
        accept(
            claims,
            issuer=self._policy.issuer,
            requirements=requirements,
            now=self._clock.now(),
            leeway=self._policy.leeway,
            is_revoked=self.revocations.is_revoked,
        )
        return claims

    def verify_subject_token(self, token: str, cert_thumbprint: str) -> AccessClaims:
        """Verify for authsvc itself, which is no audience of the token: the
        subject token of an exchange (RFC 8693). Every rule but the audience
        runs, the binding included: a token bound to a certificate is
        exchanged only by the holder of that certificate."""
        if not self.current:
            raise StoreUnavailable()
        claims = self._verified.get(token)
        if claims is None:
            claims = read_access_token(
                token, self.keyring.verification_keys, self.encryptor.decryption_keys, keep_raw=False
            )
            self._remember(token, claims)
        if not claims.aud:
            raise TokenRejected(Reason.MALFORMED)
        anyone = Requirements(audience=claims.aud[0], cert_thumbprint=cert_thumbprint)
        accept(
            claims,
            issuer=self._policy.issuer,
            requirements=anyone,
            now=self._clock.now(),
            leeway=self._policy.leeway,
            is_revoked=self.revocations.is_revoked,
        )
        return claims

    def _remember(self, token: str, claims: AccessClaims) -> None:
        # One out for one in, oldest first: evicting in bulk (or sweeping
        # for expired entries) stalled the event loop for milliseconds, which
        # showed in Verify's p99. An expired entry that stays is harmless:
        # the time rules refuse it on every use.
        while len(self._verified) >= self.verified_cache_size:
            self._verified.popitem(last=False)
        self._verified[token] = claims


async def _load_keyring(store: Store, kek: Kek, policy: Policy, clock: Clock) -> Keyring:
    keys = await ensure_keys(store, kek, policy, clock)
    keyring = Keyring.load(keys, kek, clock.now(), policy.retire_after)
    if keyring is None:
        raise RuntimeError("no active signing key after creating one")
    return keyring


async def _load_encryptor(store: Store, kek: Kek, clock: Clock) -> Encryptor:
    own = [k for k in await store.encryption_keys() if k.state == "active"]
    if not own:
        await store.add_encryption_key(generate_own_key(kek, clock.now()))
        own = [k for k in await store.encryption_keys() if k.state == "active"]
    return Encryptor(own[0], kek, await store.audience_keys())
