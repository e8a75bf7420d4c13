"""Server interceptors that admit a call only with an acceptable bearer token.

One mapping declares what every method needs, ``{"/pkg.Svc/Method":
Requirements(...)}``. A method not in it is refused unless it is public
(``public=``, exact names or whole services as ``"/pkg.Svc/"``) or a
``default`` requirement is given. The handler reads the caller's claims with
:func:`current_claims`.

Answers are fixed and safe: UNAUTHENTICATED "invalid token" for a missing or
unacceptable token, PERMISSION_DENIED "insufficient scope" for a missing scope,
PERMISSION_DENIED "permission denied" for a method nobody may call,
FAILED_PRECONDITION "re-authentication required" for a login older than the
method's ``max_auth_age``, UNAVAILABLE when the verifier cannot decide.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ._errors import VerifierUnavailable
from ._tracing import continued
from ._verifier import TokenVerifier
from ._verify import MAX_TOKEN_LENGTH, AccessClaims, Reason, Requirements, TokenRejected

_CLAIMS: contextvars.ContextVar[AccessClaims | None] = contextvars.ContextVar("authsvc_claims", default=None)

INVALID_TOKEN = "invalid token"  # noqa: S105 - a message, not a token
INSUFFICIENT_SCOPE = "insufficient scope"
NOT_ALLOWED = "permission denied"
REAUTH = "re-authentication required"
UNAVAILABLE = "authentication unavailable, retry later"

Denial = tuple[grpc.StatusCode, str]
_R = TypeVar("_R")  # what a method requires: Requirements, or TxnRequirements (_txn_interceptors)

if TYPE_CHECKING:  # generic in the stubs only
    _AioInterceptor = grpc.aio.ServerInterceptor[Any, Any]
    _SyncInterceptor = grpc.ServerInterceptor[Any, Any]
else:
    _AioInterceptor = grpc.aio.ServerInterceptor
    _SyncInterceptor = grpc.ServerInterceptor


def current_claims() -> AccessClaims:
    """The verified claims of the caller of the RPC being handled. Raises
    ``LookupError`` outside an authenticated call (for example in a public method)."""
    claims = _CLAIMS.get()
    if claims is None:
        raise LookupError("no authenticated caller in this context")
    return claims


@functools.lru_cache(maxsize=256)
def _thumbprint(pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def peer_cert_thumbprint(context: Any) -> str:
    """base64url SHA-256 of the TLS peer's DER certificate (RFC 8705 section 3.1), or ""."""
    pems = context.auth_context().get("x509_pem_cert") or ()
    pem = next(iter(pems), None)
    return _thumbprint(bytes(pem)) if pem else ""


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the one ``authorization: Bearer ...`` header (RFC 6750 section 2.1)."""
    values = [v for k, v in metadata or () if k == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    scheme, _, token = values[0].partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


def _denial(rejected: TokenRejected) -> Denial:
    if rejected.reason is Reason.MISSING_SCOPE:
        return grpc.StatusCode.PERMISSION_DENIED, INSUFFICIENT_SCOPE
    if rejected.reason is Reason.AUTH_TOO_OLD:
        return grpc.StatusCode.FAILED_PRECONDITION, REAUTH
    return grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN


def _has_audience(rule: Requirements) -> bool:
    return bool(rule.audience)


class _Rules(Generic[_R]):
    def __init__(
        self,
        requirements: Mapping[str, _R],
        public: Iterable[str],
        default: _R | None,
        valid: Callable[[_R], bool],
        needs: str = "an audience",
    ) -> None:
        for method, req in requirements.items():
            if not method.startswith("/") or not valid(req):
                raise ValueError(f"{method}: methods are '/pkg.Service/Method' and need {needs}")
        self._requirements = dict(requirements)
        public = tuple(public)
        self._public_methods = frozenset(p for p in public if not p.endswith("/"))
        self._public_services = tuple(p for p in public if p.endswith("/"))
        self._default = default

    def lookup(self, method: str) -> _R | bool | None:
        """Requirements, True for public, or None for refused."""
        found = self._requirements.get(method)
        if found is not None:
            return found
        if method in self._public_methods or method.startswith(self._public_services):
            return True
        return self._default


class _Base:
    def __init__(
        self,
        verifier: TokenVerifier,
        requirements: Mapping[str, Requirements],
        *,
        public: Iterable[str] = (),
        default: Requirements | None = None,
    ) -> None:
        self._verifier = verifier
        self._rules = _Rules(requirements, public, default, _has_audience)

    @staticmethod
    def _bound(rule: Requirements, context: Any) -> Requirements:
        # The presenter of a certificate-bound token must be our TLS peer.
        thumbprint = peer_cert_thumbprint(context)
        return dataclasses.replace(rule, cert_thumbprint=thumbprint) if thumbprint else rule


class AsyncAuthServerInterceptor(_Base, _AioInterceptor):
    """For ``grpc.aio.server(interceptors=[...])``. Handlers must be coroutines
    or async generators (the usual for grpc.aio)."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(handler_call_details)
        rule = self._rules.lookup(handler_call_details.method)
        if handler is None or rule is True:
            return handler
        token = bearer_token(handler_call_details.invocation_metadata)

        async def admit(context: Any) -> AccessClaims:
            if not isinstance(rule, Requirements):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, NOT_ALLOWED)
            if token is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN)
            assert isinstance(rule, Requirements) and token is not None  # abort raised otherwise
            try:
                return await self._verifier.verify(token, self._bound(rule, context))
            except TokenRejected as rejected:
                code, message = _denial(rejected)
            except VerifierUnavailable:
                code, message = grpc.StatusCode.UNAVAILABLE, UNAVAILABLE
            await context.abort(code, message)
            raise AssertionError("abort returned")  # pragma: no cover

        return _wrap_async(handler, admit)


class AuthServerInterceptor(_Base, _SyncInterceptor):
    """For the classic thread-pool ``grpc.server``. The verifier runs on its
    own loop (:meth:`TokenVerifier.start_in_thread`, or any loop in another
    thread); each call waits at most ``timeout`` seconds for a verdict."""

    def __init__(
        self,
        verifier: TokenVerifier,
        requirements: Mapping[str, Requirements],
        *,
        public: Iterable[str] = (),
        default: Requirements | None = None,
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
        token = bearer_token(handler_call_details.invocation_metadata)

        def admit(context: Any) -> AccessClaims:
            if not isinstance(rule, Requirements):
                context.abort(grpc.StatusCode.PERMISSION_DENIED, NOT_ALLOWED)
            if token is None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN)
            assert isinstance(rule, Requirements) and token is not None
            try:
                return self._verifier.verify_blocking(token, self._bound(rule, context), self._timeout)
            except TokenRejected as rejected:
                code, message = _denial(rejected)
            except VerifierUnavailable:
                code, message = grpc.StatusCode.UNAVAILABLE, UNAVAILABLE
            context.abort(code, message)
            raise AssertionError("abort returned")  # pragma: no cover

        return _wrap_sync(handler, admit)


def _kind(handler: Any) -> str:
    """"unary_unary", "unary_stream", ...: the handler's behaviour attribute."""
    return ("stream" if handler.request_streaming else "unary") + "_" + (
        "stream" if handler.response_streaming else "unary"
    )


def _rebuild(handler: Any, **behaviour: Any) -> Any:
    kind = _kind(handler)
    build = getattr(grpc, f"{kind}_rpc_method_handler")
    return build(
        behaviour[kind],
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _wrap_async(handler: Any, admit: Callable[[Any], Any], var: contextvars.ContextVar[Any] = _CLAIMS) -> Any:
    """The handler, run with what ``admit`` gives set in ``var``."""
    kind = _kind(handler)
    inner = getattr(handler, kind)

    if inspect.isasyncgenfunction(inner):

        async def streaming(request: Any, context: Any) -> Any:
            with continued(context.invocation_metadata()):
                claims = await admit(context)
            var.set(claims)  # this RPC's own task context
            async for response in inner(request, context):
                yield response

        return _rebuild(handler, **{kind: streaming})

    async def unary(request: Any, context: Any) -> Any:
        with continued(context.invocation_metadata()):
            claims = await admit(context)
        reset = var.set(claims)
        try:
            result = inner(request, context)
            return await result if inspect.isawaitable(result) else result
        finally:
            var.reset(reset)

    return _rebuild(handler, **{kind: unary})


def _wrap_sync(handler: Any, admit: Callable[[Any], Any], var: contextvars.ContextVar[Any] = _CLAIMS) -> Any:
    kind = _kind(handler)
    inner = getattr(handler, kind)

    if handler.response_streaming:

        def streaming(request: Any, context: Any) -> Any:
            with continued(context.invocation_metadata()):
                claims = admit(context)

            def responses() -> Any:
                reset = var.set(claims)
                try:
                    yield from inner(request, context)
                finally:
                    # A generator closed by the garbage collector runs elsewhere.
                    with contextlib.suppress(ValueError):
                        var.reset(reset)

            return responses()

        return _rebuild(handler, **{kind: streaming})

    def unary(request: Any, context: Any) -> Any:
        with continued(context.invocation_metadata()):
            claims = admit(context)
        reset = var.set(claims)  # worker threads are reused: always undo
        try:
            return inner(request, context)
        finally:
            var.reset(reset)

    return _rebuild(handler, **{kind: unary})
