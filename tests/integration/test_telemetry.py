"""Issue 15: OpenTelemetry. One password login through the client package,
inside a span of the caller's, gives one trace: the caller's span, authsvc's
server span for the RPC (continuing it through ``traceparent``), and child
spans for the store calls and the password hash; no secret in any attribute.
With tracing off (no OTEL_EXPORTER_OTLP_*), nothing is set up at all."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from authsvc import telemetry
from authsvc.config import Settings
from authsvc.server import App
from authsvc.store.postgres import PostgresStore
from authsvc_client import AsyncAuthClient, PasswordCredential, TokenPair

from ..support import FakeClock
from .helpers import add_user


@pytest.fixture
async def traced(
    settings: Settings, database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[App, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        async with App(settings, database_url, clock=clock, tracer_provider=provider) as app:
            yield app, exporter
    finally:
        telemetry.shutdown()


async def test_one_login_is_one_trace_over_rpc_store_and_hash(traced, store: PostgresStore, passwords, clock) -> None:
    app, exporter = traced
    user = await add_user(store, passwords, clock)
    caller = TracerProvider()
    caller_spans = InMemorySpanExporter()
    caller.add_span_processor(SimpleSpanProcessor(caller_spans))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        client = AsyncAuthClient(channel)
        with caller.get_tracer("test").start_as_current_span("checkout") as outer:
            pair = await client.issue(PasswordCredential(user.name, user.password), audience=["orders"])
    assert isinstance(pair, TokenPair)
    trace_id = outer.get_span_context().trace_id
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    server = [s for s in spans if s.kind == SpanKind.SERVER]
    assert [s.name for s in server] == ["/authsvc.v1.AuthService/Issue"]
    assert server[0].parent is not None and server[0].parent.span_id == outer.get_span_context().span_id
    names = {s.name for s in spans}
    assert {"password.verify", "store.user_by_name", "store.update_throttles", "store.create_session"} <= names
    for child in spans:
        if child is not server[0]:
            assert child.parent is not None and child.context.trace_id == trace_id
    attributes = json.dumps([dict(s.attributes or {}) for s in spans], default=str)
    for secret in (user.password, pair.access_token, pair.refresh_token, pair.refresh_token.split(".")[1]):
        assert secret not in attributes
    # The login's audit row names the trace.
    rows = await store._pool.fetch("SELECT trace_id FROM audit_log WHERE event = 'login_ok' AND subject = $1", user.id)
    assert [r["trace_id"] for r in rows] == [f"{trace_id:032x}"]


def test_off_means_not_even_imported(tmp_path) -> None:
    """Without OTEL_EXPORTER_OTLP_*, starting the server's modules imports no
    OpenTelemetry at all (a fresh interpreter, so this process's imports do not count)."""
    import subprocess

    code = (
        "import sys, authsvc.server, authsvc.telemetry as t; "
        "assert not t.wanted({}) and not t.enabled(); "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_otlp_exporter_and_envoys_api_import_side_by_side():
    """xds-protos ships an older copy of opentelemetry/proto/*; installed over
    opentelemetry-proto's, it broke the OTLP exporter's import, so a server
    with OTEL_EXPORTER_OTLP_* set did not start (the Makefile reinstalls
    opentelemetry-proto last). Both halves must import in one process."""
    from envoy.service.auth.v3 import external_auth_pb2
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.common.v1 import common_pb2

    assert hasattr(common_pb2, "InstrumentationScope")
    assert OTLPSpanExporter is not None and external_auth_pb2.CheckRequest is not None
