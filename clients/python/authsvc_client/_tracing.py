"""W3C trace context on the client package's calls, when OpenTelemetry is
installed (the ``otel`` extra); without it, nothing is imported and nothing
is added. The propagator is OpenTelemetry's global one (``traceparent`` and
``tracestate`` by default), so the calls join whatever trace the caller is in.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from typing import Any

Metadata = tuple[tuple[str, str], ...]


@functools.cache
def _otel() -> Any:
    """The opentelemetry API modules, or None when not installed (asked once)."""
    try:
        from opentelemetry import context, propagate, trace
    except ImportError:
        return None
    return context, propagate, trace


def with_trace(metadata: Iterable[tuple[str, str]] | None) -> Metadata | None:
    """``metadata`` plus the current trace context, if there is one."""
    otel = _otel()
    if otel is None:
        return tuple(metadata) if metadata is not None else None
    carrier: dict[str, str] = {}
    otel[1].inject(carrier)
    if not carrier:
        return tuple(metadata) if metadata is not None else None
    return (*(metadata or ()), *carrier.items())


@contextlib.contextmanager
def continued(metadata: Iterable[tuple[str, str | bytes]] | None) -> Iterator[None]:
    """In a server interceptor: make the caller's trace (from its metadata)
    current while we work for the call, unless a span already is (the service
    runs OpenTelemetry's own server instrumentation), so that our calls to
    authsvc on its behalf (a key refresh, a remote Verify) join its trace."""
    otel = _otel()
    if otel is None or otel[2].get_current_span().get_span_context().is_valid:
        yield
        return
    carrier = {k: v for k, v in metadata or () if isinstance(v, str)}
    token = otel[0].attach(otel[1].extract(carrier))
    try:
        yield
    finally:
        otel[0].detach(token)
