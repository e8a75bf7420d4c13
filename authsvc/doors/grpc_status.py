"""AuthError -> one gRPC status and one fixed, safe message (DESIGN.md section 2)."""

from __future__ import annotations

import math

import grpc

from authsvc.doors.convert import Context
from authsvc.errors import AuthError, Code, Throttled, safe_message

_STATUS = {
    Code.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Code.INVALID_CREDENTIALS: grpc.StatusCode.UNAUTHENTICATED,
    Code.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Code.THROTTLED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Code.REAUTH_REQUIRED: grpc.StatusCode.FAILED_PRECONDITION,
    Code.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Code.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
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
