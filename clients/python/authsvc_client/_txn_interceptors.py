"""Transaction Tokens across a call chain (draft-ietf-oauth-transaction-tokens-10).

A workload that receives a call verifies its Txn-Token locally and hands its
claims to the handler; every call the handler makes downstream carries the
same token, unmodified (section 9.2), in the ``txn-token`` metadata (the
draft's "Txn-Token" HTTP header, as gRPC metadata keys are lower case):

    verifier = TokenVerifier(AsyncAuthClient(channel), issuer="authsvc")
    rules = {"/shop.Payments/Charge": TxnRequirements("example.org", scopes=("payments.charge",))}
    server = grpc.aio.server(interceptors=[AsyncTxnTokenServerInterceptor(verifier, rules)])
    downstream = grpc.aio.insecure_channel(addr, interceptors=async_txn_token_forwarders())
    # in a handler: current_txn().sub, .tctx, ...; calls on `downstream` carry the token

The server interceptors take the :class:`TokenVerifier` a service already has
(same keys, same revocation feed) and answer as the bearer interceptors do:
UNAUTHENTICATED "invalid token" for a missing or unacceptable Txn-Token,
PERMISSION_DENIED "insufficient scope", "permission denied" for a method
nobody may call, UNAVAILABLE when no verdict is possible. A Txn-Token is no
credential of the caller (section 11): authenticate workloads as well (mTLS,
or the bearer interceptors beside these).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from ._errors import VerifierUnavailable
from ._interceptors import (
    INVALID_TOKEN,
    NOT_ALLOWED,
    UNAVAILABLE,
    _AioInterceptor,
    _denial,
    _Rules,
    _SyncInterceptor,
    _wrap_async,
    _wrap_sync,
)
from ._txn import TxnClaims, TxnRequirements
from ._verifier import TokenVerifier
from ._verify import MAX_TOKEN_LENGTH, TokenRejected

if TYPE_CHECKING:  # generic in the stubs only
    _AioUU = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _AioUS = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _AioSU = grpc.aio.StreamUnaryClientInterceptor[Any, Any]
    _AioSS = grpc.aio.StreamStreamClientInterceptor[Any, Any]
    _UU = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _US = grpc.UnaryStreamClientInterceptor[Any, Any]
    _SU = grpc.StreamUnaryClientInterceptor[Any, Any]
    _SS = grpc.StreamStreamClientInterceptor[Any, Any]
else:
    _AioUU, _AioUS = grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor
    _AioSU, _AioSS = grpc.aio.StreamUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor
    _UU, _US = grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor
    _SU, _SS = grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor

#: The metadata key that carries a Txn-Token between workloads.
TXN_TOKEN_METADATA = "txn-token"  # noqa: S105 - a metadata key, not a secret


@dataclass(frozen=True, slots=True)
class _Held:
    claims: TxnClaims
    token: str


_TXN: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("authsvc_txn", default=None)
_OUTGOING: contextvars.ContextVar[str | None] = contextvars.ContextVar("authsvc_txn_outgoing", default=None)


def current_txn() -> TxnClaims:
    """The verified Txn-Token of the call being handled. Raises
    ``LookupError`` outside a call admitted by a Txn-Token interceptor."""
    held = _TXN.get()
    if held is None:
        raise LookupError("no Txn-Token in this context")
    return held.claims


@contextlib.contextmanager
def use_txn_token(token: str) -> Iterator[None]:
    """Forward ``token`` instead of the received one on the calls made inside
    the block: the gateway's new Txn-Token, or a replacement."""
    reset = _OUTGOING.set(token)
    try:
        yield
    finally:
        _OUTGOING.reset(reset)


def current_txn_token() -> str:
    """The Txn-Token of the call being handled, as it came (to ask authsvc
    for a replacement). Raises ``LookupError`` outside such a call."""
    held = _TXN.get()
    if held is None:
        raise LookupError("no Txn-Token in this context")
    return held.token


def _outgoing() -> str | None:
    token = _OUTGOING.get()
    if token is not None:
        return token
    held = _TXN.get()
    return held.token if held is not None else None


def txn_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The one ``txn-token`` value (the draft: exactly one Txn-Token)."""
    values = [v for k, v in metadata or () if k == TXN_TOKEN_METADATA]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    token = values[0].strip()
    return token if token and len(token) <= MAX_TOKEN_LENGTH and " " not in token else None


def _valid(rule: TxnRequirements) -> bool:
    return bool(rule.trust_domain)


class _Base:
    def __init__(
        self,
        verifier: TokenVerifier,
        requirements: Mapping[str, TxnRequirements],
        *,
        public: Iterable[str] = (),
        default: TxnRequirements | None = None,
    ) -> None:
        self._verifier = verifier
        self._rules = _Rules(requirements, public, default, _valid, "a trust domain")


class AsyncTxnTokenServerInterceptor(_Base, _AioInterceptor):
    """For ``grpc.aio.server(interceptors=[...])``: admits a call by its Txn-Token."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(handler_call_details)
        rule = self._rules.lookup(handler_call_details.method)
        if handler is None or rule is True:
            return handler
        token = txn_token(handler_call_details.invocation_metadata)

        async def admit(context: Any) -> _Held:
            if not isinstance(rule, TxnRequirements):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, NOT_ALLOWED)
            if token is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN)
            assert isinstance(rule, TxnRequirements) and token is not None  # abort raised otherwise
            try:
                return _Held(await self._verifier.verify_txn(token, rule), token)
            except TokenRejected as rejected:
                code, message = _denial(rejected)
            except VerifierUnavailable:
                code, message = grpc.StatusCode.UNAVAILABLE, UNAVAILABLE
            await context.abort(code, message)
            raise AssertionError("abort returned")  # pragma: no cover

        return _wrap_async(handler, admit, _TXN)


class TxnTokenServerInterceptor(_Base, _SyncInterceptor):
    """For the classic thread-pool ``grpc.server``; the verifier runs on its
    own loop (:meth:`TokenVerifier.start_in_thread`)."""

    def __init__(
        self,
        verifier: TokenVerifier,
        requirements: Mapping[str, TxnRequirements],
        *,
        public: Iterable[str] = (),
        default: TxnRequirements | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(verifier, requirements, public=public, default=default)
        self._timeout = timeout

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(handler_call_details)
        rule = self._rules.lookup(handler_call_details.method)
        if handler is None or rule is True:
            return handler
        token = txn_token(handler_call_details.invocation_metadata)

        def admit(context: Any) -> _Held:
            if not isinstance(rule, TxnRequirements):
                context.abort(grpc.StatusCode.PERMISSION_DENIED, NOT_ALLOWED)
            if token is None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN)
            assert isinstance(rule, TxnRequirements) and token is not None
            try:
                return _Held(self._verifier.verify_txn_blocking(token, rule, self._timeout), token)
            except TokenRejected as rejected:
                code, message = _denial(rejected)
            except VerifierUnavailable:
                code, message = grpc.StatusCode.UNAVAILABLE, UNAVAILABLE
            context.abort(code, message)
            raise AssertionError("abort returned")  # pragma: no cover

        return _wrap_sync(handler, admit, _TXN)


def _with_token(metadata: Any) -> Any:
    """``metadata`` plus the Txn-Token in hand, if any; one the caller set
    itself is left alone."""
    token = _outgoing()
    items = list(metadata or ())
    if token is None or any(k == TXN_TOKEN_METADATA for k, _ in items):
        return metadata
    return (*items, (TXN_TOKEN_METADATA, token))


class _AsyncForwarder:
    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, _with_token(details.metadata), details.credentials,
            details.wait_for_ready,
        )  # fmt: skip


class _AsyncUnaryUnary(_AsyncForwarder, _AioUU):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AsyncUnaryStream(_AsyncForwarder, _AioUS):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AsyncStreamUnary(_AsyncForwarder, _AioSU):
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _AsyncStreamStream(_AsyncForwarder, _AioSS):
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def async_txn_token_forwarders() -> list[Any]:
    """Client interceptors for ``grpc.aio`` channels (``interceptors=``), one
    per kind of call (grpc.aio files an interceptor under one kind only):
    every call made while handling a Txn-Token call carries that token."""
    return [_AsyncUnaryUnary(), _AsyncUnaryStream(), _AsyncStreamUnary(), _AsyncStreamStream()]


@dataclass(frozen=True)
class _SyncDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class TxnTokenForwarder(_UU, _US, _SU, _SS):
    """The same for classic channels: ``grpc.intercept_channel(channel, TxnTokenForwarder())``."""

    @staticmethod
    def _details(details: Any) -> _SyncDetails:
        return _SyncDetails(
            details.method, details.timeout, _with_token(details.metadata), details.credentials,
            getattr(details, "wait_for_ready", None), getattr(details, "compression", None),
        )  # fmt: skip

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)
