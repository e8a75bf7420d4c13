"""OpenTelemetry, only when asked for.

With none of the standard ``OTEL_EXPORTER_OTLP_*`` variables set, nothing of
OpenTelemetry is imported or set up: no tracer provider, no interceptor, no
span objects, so a call costs what it cost before. With one set, ``setup``
installs a tracer provider with a batching OTLP exporter (gRPC), the
instrumentation's aio server interceptor (one server span per RPC, context
taken from the caller's ``traceparent``), and ``span`` starts child spans
(store calls, password hashing).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping

_enabled = False


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    return any(k.startswith("OTEL_EXPORTER_OTLP_") and v for k, v in env.items())


def enabled() -> bool:
    return _enabled


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, "" when tracing is off."""
    if not _enabled:
        return ""
    trace = sys.modules["opentelemetry.trace"]
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else ""


@contextlib.contextmanager
def span(name: str, **attributes: str) -> Iterator[None]:
    """A child span of the current one; nothing at all when tracing is off.
    Attributes are names and ids only, never a secret."""
    if not _enabled:
        yield
        return
    trace = sys.modules["opentelemetry.trace"]
    with trace.get_tracer("authsvc").start_as_current_span(name, attributes=attributes):
        yield
