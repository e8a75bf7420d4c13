"""A steady mixed load on several authsvc replicas, and a record of every
answer: logins, refreshes, revokes and client-credential tokens from worker
tasks; Verify of a valid and of revoked tokens, WatchRevocations and health
watches on every replica. Nothing here asserts: the test reads the record.

Calls are raw stubs, no retries, so that every status is seen as the server
gave it; the exceptions are the two a client must retry to know where it
stands: a Refresh or a Revoke that answered UNAVAILABLE is tried again with
the same token (the refresh grace window makes that safe) until it is
decided, as the client package does."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

T = TypeVar("T")
AUDIENCE = "orders"
WRITES = ("login", "refresh", "revoke", "issue_client")
CALL_TIMEOUT = 10.0  # seconds: a call that takes longer is recorded as DEADLINE_EXCEEDED
DECIDE_TIMEOUT = 180.0  # seconds a refresh or revoke is retried before the worker gives up
PROPAGATION = 5.0  # seconds after its revoke was acknowledged that every replica must refuse a token
PAUSE = 0.02  # seconds between a worker's calls: a steady load, not a flood, on a shared machine


def jti_of(access_token: str) -> str:
    payload = access_token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def token_id(refresh_token: str) -> str:
    return refresh_token.split(".", 1)[0]


@dataclass(frozen=True)
class Call:
    op: str
    replica: int
    start: float  # time.monotonic()
    end: float
    code: str  # "OK" or a grpc.StatusCode name
    detail: str = ""  # for Verify: "active", "revoked", ...


@dataclass
class Record:
    calls: list[Call] = field(default_factory=list)
    #: session id -> every refresh token id the client held, in order (the last is current)
    chains: dict[str, list[str]] = field(default_factory=dict)
    #: (session id, spent token id, new token id) of every acknowledged refresh
    refreshes: list[tuple[str, str, str]] = field(default_factory=list)
    #: jti -> (access token, monotonic time its revoke was acknowledged)
    revoked: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: sessions whose last refresh was never decided (the worker gave up)
    undecided: set[str] = field(default_factory=set)
    #: replica -> [(monotonic time, health status name)]
    health: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    #: replica -> jtis seen on its WatchRevocations streams
    watched: dict[int, set[str]] = field(default_factory=dict)
    #: violations seen as they happened (a revoked token accepted, ...)
    violations: list[str] = field(default_factory=list)

    def codes(self, since: float, until: float, ops: tuple[str, ...] | None = None) -> Counter[str]:
        return Counter(c.code for c in self.calls if since <= c.end <= until and (ops is None or c.op in ops))

    def health_at(self, replica: int, since: float, until: float) -> list[str]:
        return [s for _t, s in self.transitions(replica, since, until)]

    def transitions(self, replica: int, since: float, until: float) -> list[tuple[float, str]]:
        return [(t, s) for t, s in self.health.get(replica, []) if since <= t <= until]


class Load:
    def __init__(self, addresses: list[str], users: list[tuple[str, str]], client: tuple[str, str]) -> None:
        self.addresses = addresses
        self.record = Record()
        self._users = users
        self._client = client
        self._channels = [grpc.aio.insecure_channel(a) for a in addresses]
        self.stubs = [pb_grpc.AuthServiceStub(ch) for ch in self._channels]
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._writing = asyncio.Event()
        self._writing.set()
        self.valid_token = ""  # one token no one revokes: Verify's control
        self._rng = random.Random(16)

    # --- running ----------------------------------------------------------------------

    async def start(self, workers_per_replica: int = 2) -> None:
        first = await self._login(0, self._users[0])
        assert first is not None, "the first login failed"
        self.valid_token = first.access_token
        for replica in range(len(self.stubs)):
            self._tasks.append(asyncio.create_task(self._health(replica)))
            self._tasks.append(asyncio.create_task(self._watch(replica)))
            self._tasks.append(asyncio.create_task(self._verifier(replica)))
            for _ in range(workers_per_replica):
                self._writers.append(asyncio.create_task(self._worker(replica)))

    async def stop_writers(self) -> None:
        """Let every worker finish the call it is in, then end: a call cancelled
        in flight could commit without the record knowing (the database would
        then rightly hold a token the client never saw)."""
        self._writing.clear()
        await asyncio.wait_for(asyncio.gather(*self._writers), DECIDE_TIMEOUT + CALL_TIMEOUT)

    async def stop(self) -> None:
        self._writing.clear()
        self._stop.set()
        for task in self._writers + self._tasks:
            task.cancel()
        await asyncio.gather(*self._writers, *self._tasks, return_exceptions=True)
        for ch in self._channels:
            await ch.close(None)

    async def _timed(
        self, op: str, replica: int, call: Callable[[], Awaitable[T]], detail: Callable[[T], str] | None = None
    ) -> T | None:
        start = time.monotonic()
        try:
            result = await call()
        except grpc.aio.AioRpcError as exc:
            self.record.calls.append(Call(op, replica, start, time.monotonic(), exc.code().name))
            return None
        self.record.calls.append(Call(op, replica, start, time.monotonic(), "OK", detail(result) if detail else ""))
        return result

    def _other(self, replica: int) -> int:
        return self._rng.randrange(len(self.stubs))

    # --- the writers ------------------------------------------------------------------

    async def _login(self, replica: int, user: tuple[str, str]) -> pb.TokenPair | None:
        request = pb.IssueRequest(password=pb.PasswordCredential(username=user[0], password=user[1]))
        resp = await self._timed("login", replica, lambda: self.stubs[replica].Issue(request, timeout=CALL_TIMEOUT))
        if resp is None:
            return None
        pair: pb.TokenPair = resp.tokens
        self.record.chains[pair.session_id] = [token_id(pair.refresh_token)]
        return pair

    async def _decide(self, op: str, replica: int, call: Callable[[int], Awaitable[T]]) -> T | None:
        """Retry on UNAVAILABLE (another replica each time, as a balancer
        would) until OK or another answer; None if not OK."""
        deadline = time.monotonic() + DECIDE_TIMEOUT
        attempt = replica
        while time.monotonic() < deadline:
            start = time.monotonic()
            try:
                result = await call(attempt)
            except grpc.aio.AioRpcError as exc:
                self.record.calls.append(Call(op, attempt, start, time.monotonic(), exc.code().name))
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return None
                await asyncio.sleep(0.1)
                attempt = (attempt + 1) % len(self.stubs)
                continue
            self.record.calls.append(Call(op, attempt, start, time.monotonic(), "OK"))
            return result
        raise TimeoutError  # never decided

    async def _refresh(self, replica: int, pair: pb.TokenPair) -> pb.TokenPair | None:
        request = pb.RefreshRequest(refresh_token=pair.refresh_token)
        try:
            resp = await self._decide(
                "refresh", replica, lambda r: self.stubs[r].Refresh(request, timeout=CALL_TIMEOUT)
            )
        except TimeoutError:
            self.record.undecided.add(pair.session_id)
            return None
        if resp is None:
            return None
        new: pb.TokenPair = resp.tokens
        old_id, new_id = token_id(pair.refresh_token), token_id(new.refresh_token)
        self.record.refreshes.append((pair.session_id, old_id, new_id))
        chain = self.record.chains[pair.session_id]
        if chain[-1] != new_id:  # a grace-window repeat gives the same pair back
            chain.append(new_id)
        return new

    async def _revoke(self, replica: int, access_token: str) -> None:
        request = pb.RevokeRequest(token=access_token)
        try:
            resp = await self._decide("revoke", replica, lambda r: self.stubs[r].Revoke(request, timeout=CALL_TIMEOUT))
        except TimeoutError:
            return
        if resp is not None:
            self.record.revoked[jti_of(access_token)] = (access_token, time.monotonic())

    async def _worker(self, replica: int) -> None:
        stub = self.stubs[replica]
        client = pb.IssueRequest(client=pb.ClientCredential(client_id=self._client[0], client_secret=self._client[1]))
        while self._writing.is_set():
            pair = await self._login(replica, self._rng.choice(self._users))
            await asyncio.sleep(PAUSE)
            if pair is None:
                continue
            for _ in range(2):
                if not self._writing.is_set():
                    return
                fresh = await self._refresh(self._other(replica), pair)
                await asyncio.sleep(PAUSE)
                if fresh is None:
                    break
                pair = fresh
            if not self._writing.is_set():
                return
            await self._timed("issue_client", replica, lambda: stub.Issue(client, timeout=CALL_TIMEOUT))
            await self._revoke(self._other(replica), pair.access_token)
            await asyncio.sleep(PAUSE)

    # --- the readers ------------------------------------------------------------------

    async def _verifier(self, replica: int) -> None:
        """Verify, on this replica, the control token (must stay active) and
        revoked tokens (must stay refused once the propagation time passed)."""
        stub = self.stubs[replica]

        def verdict(resp: pb.VerifyResponse) -> str:
            return "active" if resp.active else pb.InactiveReason.Name(resp.reason)

        while not self._stop.is_set():
            control = pb.VerifyRequest(token=self.valid_token, audience=AUDIENCE)
            await self._timed("verify", replica, functools.partial(stub.Verify, control, timeout=CALL_TIMEOUT), verdict)
            if self.record.revoked:
                jti, (token, acked) = self._rng.choice(list(self.record.revoked.items()))
                asked = time.monotonic()
                request = pb.VerifyRequest(token=token, audience=AUDIENCE)
                resp = await self._timed(
                    "verify_revoked", replica, functools.partial(stub.Verify, request, timeout=CALL_TIMEOUT), verdict
                )
                if resp is not None and resp.active and asked > acked + PROPAGATION:
                    self.record.violations.append(f"replica {replica} accepted {jti}, revoked {asked - acked:.1f}s ago")
            await asyncio.sleep(PAUSE)

    async def _watch(self, replica: int) -> None:
        seen = self.record.watched.setdefault(replica, set())
        cursor = 0
        while not self._stop.is_set():
            try:
                stream = self.stubs[replica].WatchRevocations(pb.WatchRevocationsRequest(cursor=cursor))
                async for event in stream:
                    if event.kind == pb.RevocationEvent.KIND_JTI:
                        seen.add(event.value)
                    cursor = max(cursor, event.resume_cursor)
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)  # the stream ended (the database went away): resume from the cursor

    async def _health(self, replica: int) -> None:
        log = self.record.health.setdefault(replica, [])
        stub = health_pb2_grpc.HealthStub(self._channels[replica])
        while not self._stop.is_set():
            try:
                async for resp in stub.Watch(health_pb2.HealthCheckRequest(service="")):
                    log.append((time.monotonic(), health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)))
            except grpc.aio.AioRpcError as exc:
                log.append((time.monotonic(), "WATCH_" + exc.code().name))
            await asyncio.sleep(0.1)

    # --- questions --------------------------------------------------------------------

    def wrote_ok_everywhere(self, since: float) -> bool:
        return all(self.wrote_ok_after(r, since) for r in range(len(self.stubs)))

    def wrote_ok_after(self, replica: int, since: float) -> bool:
        return any(
            c.code == "OK" and c.op in WRITES and c.replica == replica and c.start >= since for c in self.record.calls
        )

    def status(self, replica: int) -> str:
        log = self.record.health.get(replica) or [(0.0, "UNKNOWN")]
        return log[-1][1]

    def summary(self, since: float, until: float) -> dict[str, Any]:
        return {op: dict(self.record.codes(since, until, (op,))) for op in (*WRITES, "verify", "verify_revoked")}
