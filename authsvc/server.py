"""Wiring and lifecycle: start, health, background sync, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from authsvc import telemetry
from authsvc.config import ConfigError, Settings
from authsvc.domain import security
from authsvc.domain.audit import trail as audit_trail
from authsvc.domain.clock import Clock, SystemClock
from authsvc.domain.deps import Deps
from authsvc.domain.identity.passwords import Passwords
from authsvc.domain.tokens import key_rotation
from authsvc.domain.tokens.live import LiveState
from authsvc.doors import envoy, grpc_admin
from authsvc.doors.grpc_auth import AuthServicer
from authsvc.doors.oauth_http import HttpConfig, HttpDoor
from authsvc.doors.registry import add_service, add_to_server
from authsvc.doors.tls import ReloadingCredentials
from authsvc.errors import StoreUnavailable
from authsvc.metrics import Metrics
from authsvc.store.notify import Listener
from authsvc.store.postgres import KEYS_CHANNEL, NOTIFY_CHANNEL, PostgresStore
from authsvc_client import pb

if TYPE_CHECKING:
    from authsvc.workers import Worker

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AuthService"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: Database connections of one replica (plus one for LISTEN).
POOL_SIZE = 16
MIN_POOL_PER_WORKER = 4


#: grpc's own cut-off for a request, far above AUTHSVC_MAX_MESSAGE_BYTES: up to
#: here a request too large is answered INVALID_ARGUMENT by the doors (see
#: doors/registry.py); past it grpc answers RESOURCE_EXHAUSTED by itself.
HARD_MAX_RECEIVE_BYTES = 4 << 20


def server_options(max_message_bytes: int, *, shared_port: bool = False) -> list[tuple[str, int]]:
    """The grpc.aio server's channel arguments (also the bench's ceiling server's).

    ``shared_port``: workers of one ``authsvc serve`` bind the same port with
    SO_REUSEPORT. grpc allows that by default; a lone server turns it off, so a
    second process started on a taken port fails instead of silently taking
    half of the connections."""
    return [
        ("grpc.so_reuseport", int(shared_port)),
        ("grpc.max_receive_message_length", max(HARD_MAX_RECEIVE_BYTES, max_message_bytes)),
        ("grpc.max_send_message_length", max_message_bytes),
        # Long-lived WatchRevocations streams: ping idle peers so a dead one is
        # noticed, and let clients ping us too.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]


class App:
    """One authsvc replica: a grpc.aio server over a Postgres store."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        clock: Clock | None = None,
        *,
        worker: int | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self.settings = settings
        self._tracer_provider = tracer_provider
        #: Index among the workers of one ``authsvc serve`` (see workers.py), or None.
        self.worker = worker
        self._dsn = database_url
        self.clock = clock or SystemClock()
        self.health = health_aio.HealthServicer()
        self.metrics = Metrics()
        self.http: HttpDoor | None = None
        self.tls: ReloadingCredentials | None = None
        self.http_port = 0
        self.metrics_port = 0
        self._stopping = False
        self.port = 0
        self.deps: Deps | None = None
        self._server: grpc.aio.Server | None = None
        self.servicer: AuthServicer | None = None
        self._store: PostgresStore | None = None
        self._passwords: Passwords | None = None
        self._listener: Listener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._keys_changed = asyncio.Event()
        self._healthy = True

    async def start(self) -> int:
        settings = self.settings
        # Workers split the pool: N workers hold what one replica would.
        pool = max(MIN_POOL_PER_WORKER, -(-POOL_SIZE // settings.workers))
        self._store = store = await PostgresStore.connect(
            self._dsn, max_size=pool, transaction_pooling=settings.database_pooling == "transaction"
        )
        await store.migrate()
        kek = settings.load_kek()
        # One hashing thread per core in every worker, though workers share
        # the cores: connections, not calls, are spread over workers, and one
        # busy client (a gateway on one channel) must still get every core.
        self._passwords = Passwords(settings.argon2)
        live = await LiveState.load(store, kek, settings.policy, self.clock)
        live.on_key_withdrawn = self._keys_changed.set  # reload now: the next signer may be needed
        # Workers split the verified-token cache too: N of them hold what one
        # replica would, and each full walk of the collector stays short.
        live.verified_cache_size = max(1, live.verified_cache_size // settings.workers)
        live.max_staleness = settings.verify_max_staleness
        self.deps = Deps(store, self.clock, settings.policy, kek, self._passwords, live)

        limit = settings.max_message_bytes
        # Tracing only when OTLP export is configured (or a test hands a provider).
        tracing = self._tracer_provider is not None or telemetry.wanted()
        self._server = server = grpc.aio.server(
            options=server_options(limit, shared_port=self.worker is not None),
            interceptors=telemetry.setup(self._tracer_provider) if tracing else None,
        )
        self.servicer = AuthServicer(self.deps, self.metrics)
        add_to_server(self.servicer, server, limit)
        envoy_door = envoy.Authorizer(self.deps, settings.envoy, self.metrics)
        add_service(envoy_door, server, envoy.SERVICE, envoy.MESSAGES, max_message_bytes=limit)
        add_service(
            grpc_admin.AdminServicer(self.deps, self.metrics), server, grpc_admin.SERVICE, grpc_admin.MESSAGES,
            max_message_bytes=limit,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if settings.reflection:  # off for locked-down deployments (AUTHSVC_REFLECTION=false)
            services = (SERVICE_NAME, envoy.SERVICE.full_name, grpc_admin.SERVICE.full_name)
            reflection.enable_server_reflection((*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        try:
            if settings.tls is None:
                self.port = server.add_insecure_port(settings.listen)
            else:
                # Reread at each handshake: certificates rotate without a restart.
                self.tls = ReloadingCredentials(settings.tls)
                self.port = server.add_secure_port(settings.listen, self.tls.credentials())
        except RuntimeError:  # grpc's "failed to bind", which names no reason
            self.port = 0
        if self.port == 0:
            await self.stop(0)
            raise ConfigError(
                f"AUTHSVC_LISTEN: cannot listen on {settings.listen} (port taken, or not a local address)"
            )
        await server.start()

        notify_url = settings.notify_url(self._dsn)
        if notify_url is not None:
            self._listener = Listener(
                notify_url, {NOTIFY_CHANNEL: self._wake.set, KEYS_CHANNEL: self._keys_changed.set}
            )
            self._listener.start()
        elif settings.use_notify:
            log.info(
                "LISTEN off (transaction pooling, no AUTHSVC_LISTEN_DATABASE_URL): "
                "revocations arrive by the reconcile alone, every %.1fs",
                settings.reconcile_interval,
            )
        self._tasks.append(asyncio.create_task(self._sync_loop(), name="sync"))
        self._tasks.append(asyncio.create_task(self._keys_loop(), name="keys"))
        if settings.http_listen:
            await self._start_http(settings.http_listen)
        await self._set_health(_SERVING)  # database reached, signing key loaded
        log.info("authsvc serving on %s (port %d)", settings.listen, self.port)
        return self.port

    async def _start_http(self, listen: str) -> None:
        assert self.deps is not None
        settings = self.settings
        self._http_gauges()
        self.http = HttpDoor(self.deps, self.metrics, self.ready, _http_config(settings))
        metrics_listen = _worker_port(settings.metrics_listen, self.worker) if settings.metrics_listen else None
        self.http_port = await self.http.start(_worker_port(listen, self.worker), metrics_listen)
        self.metrics_port = self.http.metrics_port
        log.info("HTTP side port on port %d, metrics on port %d", self.http_port, self.metrics_port)

    def _http_gauges(self) -> None:
        assert self.deps is not None
        live = self.deps.live
        self.metrics.gauge("authsvc_revocations", "Revocations held in memory.", lambda: len(live.revocations))
        self.metrics.gauge("authsvc_revocation_cursor", "Last revocation sequence applied.", lambda: live.low_water)
        self.metrics.gauge("authsvc_published_keys", "Keys in the JWKS.", lambda: len(live.keyring.kids))
        self.metrics.gauge("authsvc_up", "1 while the database is reachable.", lambda: float(self._healthy))
        self.metrics.gauge(
            "authsvc_revocation_lag_seconds", "Commit to apply, newest revocation this replica applied.",
            lambda: live.revocation_lag,
        )  # fmt: skip
        self.metrics.gauge(
            "authsvc_signing_key_age_seconds", "Age of the key signing now.",
            lambda: max(0.0, self.clock.now() - live.keyring.active_since),
        )  # fmt: skip
        self.metrics.family(
            "authsvc_security_events_total", "Failed logins, lockouts, refresh-token reuse.", "counter", "event",
            lambda: security.COUNTS,
        )  # fmt: skip
        assert self._store is not None
        self.metrics.family("authsvc_db_pool_connections", "Database pool.", "gauge", "state", self._store.pool_use)

    def ready(self) -> bool:
        """Readiness (/readyz): the database answers and no shutdown has begun."""
        return self._healthy and not self._stopping

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def sync_now(self) -> None:
        """Catch up with revocations and keys (also what the timer does)."""
        assert self.deps is not None and self._store is not None
        await self.deps.live.sync_revocations(self._store)

    async def _sync_loop(self) -> None:
        """Revocations: on every notice, and on a timer whatever happens (the
        timer alone is correct; the notice only makes it fast)."""
        assert self.deps is not None and self._store is not None
        interval = self.settings.reconcile_interval
        while not await self._woken(self._wake, interval):
            await self._guarded(self.deps.live.sync_revocations(self._store))

    async def _keys_loop(self) -> None:
        """Keys: reload on a notice or a timer; rotate when due; prune."""
        assert self.deps is not None and self._store is not None
        deps, store, settings = self.deps, self._store, self.settings
        while not await self._woken(self._keys_changed, settings.key_reload_interval):
            await self._guarded(self.maintain_keys())
            now = self.clock.now()
            await self._guarded(store.prune_revocations(now))
            await self._guarded(store.forget_grace_pairs(now - deps.policy.refresh_grace))
            await self._guarded(store.prune_expired(now))
            if settings.audit_retention_days:
                await self._guarded(audit_trail.prune(store, now, settings.audit_retention_days * 86400.0))

    async def _woken(self, event: asyncio.Event, interval: float) -> bool:
        """Wait for ``event`` or ``interval`` seconds, then clear it; True once
        the replica is stopping. The loops end on that flag, not on their
        cancellation alone: Python 3.11's wait_for can swallow a cancel that
        lands as the event is set, and a loop that went on would hold stop()
        for ever (seen as tests hanging to their timeout)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), interval)
        event.clear()
        return self._stopping

    async def maintain_keys(self) -> None:
        """Rotate if due, then load what the database says (also what the timer does)."""
        assert self.deps is not None and self._store is not None
        deps = self.deps
        await key_rotation.maintain(self._store, deps.kek, deps.policy, self.clock)
        await deps.live.reload_keys(self._store, deps.kek)

    async def _guarded(self, work: Awaitable[object]) -> None:
        """Run background work; track the database's health from its outcome."""
        try:
            await work
        except StoreUnavailable:
            if self._healthy:
                self._healthy = False
                # Balancers drain us now. Verify keeps answering from memory
                # until its staleness bound (LiveState.current), then fails
                # closed; watchers are cut off at once (their verifiers go
                # stale on their own bound rather than trust old data).
                assert self.deps is not None
                self.deps.live.close_subscribers()
                await self._set_health(_NOT_SERVING)
                log.warning("database unreachable: health NOT_SERVING, Verify fails closed")
            return
        except Exception:
            log.exception("background work failed")
            return
        if not self._healthy:
            self._healthy = True
            await self._set_health(_SERVING)
            log.info("database reachable again")

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING first, so balancers drain; in-flight calls then get
        ``grace`` seconds to finish."""
        self._stopping = True
        await self._set_health(_NOT_SERVING)
        if self.deps is not None:
            self.deps.live.close_subscribers()  # watch streams end; clients resume elsewhere
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace if grace is None else grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            await self._listener.stop()
        if self.http is not None:
            await self.http.stop()
        if self._store is not None:
            await self._store.close()
        if self._passwords is not None:
            self._passwords.close()


def _http_config(settings: Settings) -> HttpConfig:
    tls = settings.tls
    return HttpConfig(
        issuer=settings.policy.issuer,
        public_url=settings.http_public_url,
        tls=(tls.cert, tls.key, tls.client_ca) if tls is not None else None,
        mtls=tls is not None and tls.client_ca is not None,
        bound_tokens=settings.policy.bind_to_cert,
    )


def _worker_port(listen: str, worker: int | None) -> str:
    """Worker N serves the HTTP side port on its port + N: each worker's
    /metrics is its own, so each is a scrape target of its own."""
    host, _, port = listen.rpartition(":")
    if not worker or int(port) == 0:
        return listen
    return f"{host}:{int(port) + worker}"


async def serve(settings: Settings, database_url: str, *, worker: Worker | None = None) -> None:
    """Run until SIGTERM or SIGINT (or, as a worker, until the supervisor goes),
    then shut down gracefully."""
    app = App(settings, database_url, worker=worker.index if worker else None)
    await app.start()
    # What start-up loaded (modules, keys, revocations) lives as long as the
    # process: out of the collector's full walks, which otherwise pause the
    # loop for tens of milliseconds (Verify's p99).
    gc.collect()  # start-up's garbage goes first, not into the frozen set
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # A worker leaves SIGINT to its supervisor, which passes it on as SIGTERM.
    for sig in (signal.SIGTERM,) if worker else (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if worker is None:
        print(f"authsvc listening on {settings.listen.rpartition(':')[0]}:{app.port}", flush=True)
    else:
        worker.ready(app.port, stop.set)
    await stop.wait()
    log.info("shutting down (grace %.0fs)", settings.shutdown_grace)
    await app.stop()
