"""OpenTelemetry traces, only when asked for.

With none of the standard ``OTEL_EXPORTER_OTLP_*`` variables set, nothing of
OpenTelemetry is imported or set up: no tracer provider, no interceptor, no
span objects; what is left on a call is one check of a module flag, so a call
costs what it cost before. With one set (and the ``otel`` extra installed),
``setup`` installs a tracer provider exporting over OTLP (the exporter reads
the same variables: endpoint, headers, protocol), and the instrumentation's
grpc.aio server interceptor: one server span per RPC, continuing the trace
of the caller's ``traceparent``. ``span`` makes child spans (store calls,
password hashing).

Span attributes are names and ids, never a secret: the interceptor records
method, status and peer; ours record the store method or the hash's purpose.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)


class _State:
    tracer: Any = None  # an opentelemetry Tracer once set up; None means off
    provider: Any = None


_on = _State()


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for OTLP export."""
    return any(k.startswith("OTEL_EXPORTER_OTLP_") and v for k, v in env.items())


def setup(provider: Any = None) -> list[Any]:
    """Turn tracing on; gives the server interceptors to install. Without
    ``provider`` (tests pass one with an in-memory exporter), one exporting
    over OTLP becomes the global provider."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    if provider is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over this default.
        provider = TracerProvider(resource=Resource.create({"service.name": "authsvc"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        log.info("tracing on: spans are exported over OTLP")
    _on.provider = provider
    _on.tracer = trace.get_tracer("authsvc", tracer_provider=provider)
    return [aio_server_interceptor(tracer_provider=provider)]  # type: ignore[no-untyped-call]


def shutdown() -> None:
    """Flush what is queued and turn tracing off."""
    if _on.provider is not None and hasattr(_on.provider, "force_flush"):
        _on.provider.force_flush()
    _on.tracer = _on.provider = None


def enabled() -> bool:
    return _on.tracer is not None


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, "" when tracing is off."""
    if _on.tracer is None:
        return ""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else ""


@contextlib.contextmanager
def span(name: str, **attributes: str) -> Iterator[None]:
    """A child span of the current one; nothing at all when tracing is off.
    Attributes are names and ids only, never a secret."""
    if _on.tracer is None:
        yield
        return
    with _on.tracer.start_as_current_span(name, attributes=attributes):
        yield
