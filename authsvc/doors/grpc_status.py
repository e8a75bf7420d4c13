"""AuthError -> one gRPC status and one fixed, safe message (docs/api.md, "Status codes")."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc

from authsvc import logs, telemetry
from authsvc.doors.convert import Context
from authsvc.doors.registry import OVERSIZE
from authsvc.errors import AuthError, Code, InvalidArgument, Throttled, safe_message
from authsvc.metrics import Metrics

log = logging.getLogger(__name__)

_STATUS = {
    Code.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Code.INVALID_CREDENTIALS: grpc.StatusCode.UNAUTHENTICATED,
    # No usable bearer token on a self-service call: UNAUTHENTICATED too, but
    # with its subclass's fixed message naming what the call needs.
    Code.BEARER_REJECTED: grpc.StatusCode.UNAUTHENTICATED,
    Code.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Code.THROTTLED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Code.REAUTH_REQUIRED: grpc.StatusCode.FAILED_PRECONDITION,
    Code.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Code.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    Code.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Code.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
INTERNAL_MESSAGE = "internal error"
RETRY_AFTER_KEY = "retry-after-ms"


def status_of(error: AuthError) -> tuple[grpc.StatusCode, str]:
    return _STATUS[error.code], safe_message(error)


async def abort_with(context: Context, error: AuthError) -> None:
    code, message = status_of(error)
    if isinstance(error, Throttled):
        # Rounded up (never invite a retry that is still too early), after
        # trimming float noise such as 1500.0000001 ms.
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(math.ceil(round(error.retry_after * 1000, 3)))),))
    await context.abort(code, message)


async def abort_internal(context: Context) -> None:
    # The caller learns nothing but the code; the traceback is in our log.
    await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


class Servicer(Protocol):
    """What :func:`rpc` needs of a servicer: where to count its calls."""

    _metrics: Metrics


S = TypeVar("S", bound=Servicer)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[S, Req, Context], Awaitable[Resp]]


def rpc(fn: Handler[S, Req, Resp]) -> Handler[S, Req, Resp]:
    """Every unary method of every gRPC door: count it, map AuthError to its
    status, anything else to a bare INTERNAL."""

    name = fn.__name__

    @functools.wraps(fn)
    async def wrapper(self: S, request: Req, context: Context) -> Resp:
        started = time.perf_counter()
        try:
            if request is None:  # did not parse: see registry.py
                raise InvalidArgument("malformed request")
            if request is OVERSIZE:
                raise InvalidArgument("request is too large")
            response = await fn(self, request, context)
            elapsed = time.perf_counter() - started
            self._metrics.observe(name, "OK", elapsed)
            logs.rpc_done(name, "OK", elapsed, context.peer(), telemetry.current_trace_id())
            return response
        except AuthError as exc:
            error: AuthError | None = exc
        except Exception:  # the seam where nothing may escape with details
            log.exception("unexpected error in %s", name)
            error = None
        code = status_of(error)[0].name if error is not None else "INTERNAL"
        elapsed = time.perf_counter() - started
        self._metrics.observe(name, code, elapsed)
        logs.rpc_done(name, code, elapsed, context.peer(), telemetry.current_trace_id())
        if error is not None:
            await abort_with(context, error)
        else:
            await abort_internal(context)
        raise AssertionError("abort returned")  # pragma: no cover

    return wrapper
