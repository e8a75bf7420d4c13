"""AsyncAuthClient: :class:`AuthClient`'s methods as coroutines, over a
``grpc.aio.Channel``, with the same deadlines, retries and errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, overload

import grpc

from . import _models as m
from ._client import (
    DEFAULT_TIMEOUT,
    Metadata,
    _Base,
    _bearer,
    _challenge_request,
    _exchange_request,
    _issue_request,
    _issue_result,
    _remaining,
    _Req,
    _Resp,
    _revoke_request,
    _verify_request,
)
from ._errors import translate
from ._models import (
    ClientCredential,
    ExchangedToken,
    MfaChallenge,
    MfaEnrolment,
    PasswordCredential,
    RevocationEvent,
    SessionInfo,
    TokenPair,
    VerifyResult,
)
from ._proto import auth_pb2 as pb
from ._proto import auth_pb2_grpc as pb_grpc
from ._retry import RetryPolicy
from ._tracing import with_trace
from ._verify import Requirements


class AsyncAuthClient(_Base):
    """authsvc over a ``grpc.aio.Channel``; the same methods as
    :class:`AuthClient`, as coroutines. :meth:`close` closes the channel."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(timeout, retry, rng)
        self.channel = channel
        self._stub = pb_grpc.AuthServiceStub(channel)
        self._sleep = sleep

    async def close(self, grace: float | None = None) -> None:
        await self.channel.close(grace)

    async def __aenter__(self) -> AsyncAuthClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        timeout: float | None,
        metadata: Metadata | None = None,
        retryable: bool = True,
    ) -> _Resp:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                response: _Resp = await method(
                    request, timeout=_remaining(deadline), metadata=with_trace(metadata)
                )
                return response
            except grpc.RpcError as exc:
                error = translate(exc)
                delay = self._retry_delay(error, retryable, attempt, deadline)
                if delay is None:
                    raise error from exc
            await self._sleep(delay)

    @overload
    async def issue(
        self, credential: ClientCredential, *, audience: Sequence[str] = (), scope: Sequence[str] = (),
        timeout: float | None = None,
    ) -> TokenPair: ...  # fmt: skip
    @overload
    async def issue(
        self, credential: PasswordCredential, *, audience: Sequence[str] = (), scope: Sequence[str] = (),
        timeout: float | None = None,
    ) -> TokenPair | MfaChallenge: ...  # fmt: skip
    async def issue(
        self,
        credential: PasswordCredential | ClientCredential,
        *,
        audience: Sequence[str] = (),
        scope: Sequence[str] = (),
        timeout: float | None = None,
    ) -> TokenPair | MfaChallenge:
        request, retryable = _issue_request(credential, audience, scope)
        return _issue_result(await self._unary(self._stub.Issue, request, timeout, retryable=retryable))

    async def challenge_mfa(
        self, challenge_id: str, *, totp_code: str = "", recovery_code: str = "", timeout: float | None = None
    ) -> TokenPair:
        request = _challenge_request(challenge_id, totp_code, recovery_code)
        return m.token_pair((await self._unary(self._stub.ChallengeMFA, request, timeout, retryable=False)).tokens)

    async def exchange_token(
        self,
        credential: ClientCredential,
        subject_token: str,
        *,
        audience: Sequence[str],
        scope: Sequence[str] = (),
        requested_token_type: str = "",
        subject_token_type: str = "",
        request_context: Mapping[str, Any] | None = None,
        request_details: Mapping[str, Any] | None = None,
        purpose: str = "",
        timeout: float | None = None,
    ) -> ExchangedToken:
        """See :meth:`AuthClient.exchange_token`."""
        request = _exchange_request(
            credential, subject_token, audience, scope, requested_token_type, subject_token_type,
            request_context, request_details, purpose,
        )  # fmt: skip
        return m.exchanged_token(await self._unary(self._stub.ExchangeToken, request, timeout))

    async def verify(self, token: str, requirements: Requirements, *, timeout: float | None = None) -> VerifyResult:
        return m.verify_result(await self._unary(self._stub.Verify, _verify_request(token, requirements), timeout))

    async def refresh(
        self, refresh_token: str, *, scope: Sequence[str] = (), timeout: float | None = None
    ) -> TokenPair:
        request = pb.RefreshRequest(refresh_token=refresh_token, scope=list(scope))
        return m.token_pair((await self._unary(self._stub.Refresh, request, timeout)).tokens)

    async def revoke(
        self,
        token: str | None = None,
        *,
        session_id: str | None = None,
        subject: str | None = None,
        access_token: str | None = None,
        timeout: float | None = None,
    ) -> int:
        request, metadata = _revoke_request(token, session_id, subject, access_token)
        return (await self._unary(self._stub.Revoke, request, timeout, metadata)).revoked

    async def enroll_mfa(self, access_token: str, *, timeout: float | None = None) -> MfaEnrolment:
        response = await self._unary(self._stub.EnrollMFA, pb.EnrollMFARequest(), timeout, _bearer(access_token))
        return MfaEnrolment(otpauth_uri=response.otpauth_uri, secret=response.secret)

    async def confirm_mfa(
        self, access_token: str, totp_code: str, *, timeout: float | None = None
    ) -> tuple[str, ...]:
        request = pb.ConfirmMFARequest(totp_code=totp_code)
        response = await self._unary(
            self._stub.ConfirmMFA, request, timeout, _bearer(access_token), retryable=False
        )
        return tuple(response.recovery_codes)

    async def get_jwks(self, *, timeout: float | None = None) -> str:
        return (await self._unary(self._stub.GetJWKS, pb.GetJWKSRequest(), timeout)).jwks_json

    async def list_sessions(
        self, access_token: str, *, subject: str = "", include_revoked: bool = False, timeout: float | None = None
    ) -> tuple[SessionInfo, ...]:
        request = pb.ListSessionsRequest(subject=subject, include_revoked=include_revoked)
        response = await self._unary(self._stub.ListSessions, request, timeout, _bearer(access_token))
        return tuple(m.session_info(s) for s in response.sessions)

    async def watch_revocations(
        self, cursor: int = 0, *, on_ready: Callable[[], None] | None = None
    ) -> AsyncGenerator[RevocationEvent, None]:
        """Revocation events after ``cursor``, then live ones, until the stream
        ends. No deadline and no retry: resume from the last ``resume_cursor``.

        ``on_ready`` is called when authsvc says the backlog has been sent in
        full (its caught-up marker): only from then on is a local set current.
        """
        call: Any = self._stub.WatchRevocations(
            pb.WatchRevocationsRequest(cursor=cursor), metadata=with_trace(None)
        )
        try:
            async for message in call:
                if message.kind == pb.RevocationEvent.KIND_CAUGHT_UP:
                    if on_ready is not None:
                        on_ready()
                    continue
                yield m.revocation_event(message)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        finally:
            call.cancel()
