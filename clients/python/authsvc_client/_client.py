"""AuthClient over a ``grpc.Channel`` (its twin AsyncAuthClient, over a
``grpc.aio.Channel``, is in ``_aio_client``, sharing the requests built here):
one method per RPC, a deadline on every call, retries on UNAVAILABLE only,
results as frozen records and errors as :class:`AuthsvcError`.

Retries. Only UNAVAILABLE is retried, with exponential backoff and full jitter,
at most ``RetryPolicy.max_attempts`` tries, all within the call's one deadline.
Calls that spend a guess or a one-time code are never retried, whatever the
status: Issue with a password (the attempt counts towards the account lockout),
ChallengeMFA and ConfirmMFA (the code and the challenge are single-use).
Refresh is retried: a repeat inside the server's refresh grace window
(``AUTHSVC_REFRESH_GRACE``) gets the same pair; without a grace window a repeat
of a request that did reach the server counts as reuse and ends the session.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

import grpc

from . import _models as m
from ._errors import AuthsvcError, Unavailable, translate
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

#: Seconds a call may take, retries included, unless the call says otherwise.
DEFAULT_TIMEOUT = 5.0

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
Metadata = tuple[tuple[str, str], ...]


def _bearer(access_token: str) -> Metadata:
    return (("authorization", f"Bearer {access_token}"),)


def _issue_request(
    credential: PasswordCredential | ClientCredential, audience: Sequence[str], scope: Sequence[str]
) -> tuple[pb.IssueRequest, bool]:
    """The request, and whether it may be retried."""
    if isinstance(credential, PasswordCredential):
        password = pb.PasswordCredential(username=credential.username, password=credential.password)
        return pb.IssueRequest(password=password, audience=list(audience), scope=list(scope)), False
    if isinstance(credential, ClientCredential):
        client = pb.ClientCredential(client_id=credential.client_id, client_secret=credential.client_secret)
        return pb.IssueRequest(client=client, audience=list(audience), scope=list(scope)), True
    raise TypeError("credential must be a PasswordCredential or a ClientCredential")


def _issue_result(response: pb.IssueResponse) -> TokenPair | MfaChallenge:
    if response.WhichOneof("result") == "mfa_challenge":
        return m.mfa_challenge(response.mfa_challenge)
    return m.token_pair(response.tokens)


def _challenge_request(challenge_id: str, totp_code: str, recovery_code: str) -> pb.ChallengeMFARequest:
    if bool(totp_code) == bool(recovery_code):
        raise ValueError("give exactly one of totp_code and recovery_code")
    if totp_code:
        return pb.ChallengeMFARequest(challenge_id=challenge_id, totp_code=totp_code)
    return pb.ChallengeMFARequest(challenge_id=challenge_id, recovery_code=recovery_code)


def _verify_request(token: str, requirements: Requirements) -> pb.VerifyRequest:
    return pb.VerifyRequest(
        token=token,
        audience=requirements.audience,
        required_scope=list(requirements.scopes),
        cert_thumbprint=requirements.cert_thumbprint,
        max_auth_age_seconds=requirements.max_auth_age,
        require_encrypted=requirements.require_encrypted,
        max_delegation_depth=requirements.max_delegation_depth,
    )


def _exchange_request(
    credential: ClientCredential,
    subject_token: str,
    audience: Sequence[str],
    scope: Sequence[str],
    requested_token_type: str,
    subject_token_type: str,
    request_context: Mapping[str, Any] | None,
    request_details: Mapping[str, Any] | None,
    purpose: str,
) -> pb.ExchangeTokenRequest:
    if not isinstance(credential, ClientCredential):
        raise TypeError("the actor of an exchange is a service client: give a ClientCredential")
    return pb.ExchangeTokenRequest(
        client=pb.ClientCredential(client_id=credential.client_id, client_secret=credential.client_secret),
        subject_token=subject_token, subject_token_type=subject_token_type, audience=list(audience),
        scope=list(scope), requested_token_type=requested_token_type,
        request_context=json.dumps(dict(request_context)) if request_context is not None else "",
        request_details=json.dumps(dict(request_details)) if request_details is not None else "",
        purpose=purpose,
    )  # fmt: skip


def _revoke_request(
    token: str | None, session_id: str | None, subject: str | None, access_token: str | None
) -> tuple[pb.RevokeRequest, Metadata | None]:
    given = [t for t in (token, session_id, subject) if t is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of token, session_id and subject")
    if token is not None:
        return pb.RevokeRequest(token=token), None
    if access_token is None:
        raise ValueError("revoking a session or a subject needs the caller's access_token")
    if session_id is not None:
        return pb.RevokeRequest(session_id=session_id), _bearer(access_token)
    return pb.RevokeRequest(subject=subject or ""), _bearer(access_token)


class _Base:
    def __init__(self, timeout: float, retry: RetryPolicy, rng: random.Random | None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._timeout = timeout
        self._retry = retry
        self._rng = rng or random.Random()

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self._timeout if timeout is None else timeout)

    def _retry_delay(self, error: AuthsvcError, retryable: bool, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before trying again, or None to give up."""
        if not retryable or not isinstance(error, Unavailable) or attempt >= self._retry.max_attempts:
            return None
        delay = self._retry.backoff(attempt, self._rng)
        return delay if time.monotonic() + delay < deadline else None


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)


class AuthClient(_Base):
    """authsvc over a synchronous ``grpc.Channel``. The caller owns the channel;
    :meth:`close` (or ``with``) closes it."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(timeout, retry, rng)
        self.channel = channel
        self._stub = pb_grpc.AuthServiceStub(channel)
        self._sleep = sleep

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(
        self,
        method: grpc.UnaryUnaryMultiCallable[_Req, _Resp],
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
                response: _Resp = method(request, timeout=_remaining(deadline), metadata=with_trace(metadata))
                return response
            except grpc.RpcError as exc:
                error = translate(exc)
                delay = self._retry_delay(error, retryable, attempt, deadline)
                if delay is None:
                    raise error from exc
            self._sleep(delay)

    @overload
    def issue(
        self, credential: ClientCredential, *, audience: Sequence[str] = (), scope: Sequence[str] = (),
        timeout: float | None = None,
    ) -> TokenPair: ...  # fmt: skip
    @overload
    def issue(
        self, credential: PasswordCredential, *, audience: Sequence[str] = (), scope: Sequence[str] = (),
        timeout: float | None = None,
    ) -> TokenPair | MfaChallenge: ...  # fmt: skip
    def issue(
        self,
        credential: PasswordCredential | ClientCredential,
        *,
        audience: Sequence[str] = (),
        scope: Sequence[str] = (),
        timeout: float | None = None,
    ) -> TokenPair | MfaChallenge:
        """Log in. Empty ``audience``/``scope`` mean all the principal may have.
        A user with MFA gets an :class:`MfaChallenge` instead of tokens."""
        request, retryable = _issue_request(credential, audience, scope)
        return _issue_result(self._unary(self._stub.Issue, request, timeout, retryable=retryable))

    def challenge_mfa(
        self, challenge_id: str, *, totp_code: str = "", recovery_code: str = "", timeout: float | None = None
    ) -> TokenPair:
        request = _challenge_request(challenge_id, totp_code, recovery_code)
        return m.token_pair(self._unary(self._stub.ChallengeMFA, request, timeout, retryable=False).tokens)

    def exchange_token(
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
        """Token exchange (RFC 8693) as the service ``credential`` names: a
        delegated token for ``audience``, or with ``requested_token_type=
        TXN_TOKEN_TYPE`` a Txn-Token for the trust domain (``request_context``
        becomes its ``rctx``, ``request_details`` its ``tctx``). Give a
        Txn-Token as ``subject_token`` with ``subject_token_type=TXN_TOKEN_TYPE``
        to replace it (narrower scope, added context)."""
        request = _exchange_request(
            credential, subject_token, audience, scope, requested_token_type, subject_token_type,
            request_context, request_details, purpose,
        )  # fmt: skip
        return m.exchanged_token(self._unary(self._stub.ExchangeToken, request, timeout))

    def verify(self, token: str, requirements: Requirements, *, timeout: float | None = None) -> VerifyResult:
        """Introspect (RFC 7662): an inactive token is a result, not an error."""
        return m.verify_result(self._unary(self._stub.Verify, _verify_request(token, requirements), timeout))

    def refresh(self, refresh_token: str, *, scope: Sequence[str] = (), timeout: float | None = None) -> TokenPair:
        request = pb.RefreshRequest(refresh_token=refresh_token, scope=list(scope))
        return m.token_pair(self._unary(self._stub.Refresh, request, timeout).tokens)

    def revoke(
        self,
        token: str | None = None,
        *,
        session_id: str | None = None,
        subject: str | None = None,
        access_token: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Revoke one of: a token (possession is proof, RFC 7009), a session or a
        subject (both need the caller's ``access_token``). Gives how many."""
        request, metadata = _revoke_request(token, session_id, subject, access_token)
        return self._unary(self._stub.Revoke, request, timeout, metadata).revoked

    def enroll_mfa(self, access_token: str, *, timeout: float | None = None) -> MfaEnrolment:
        response = self._unary(self._stub.EnrollMFA, pb.EnrollMFARequest(), timeout, _bearer(access_token))
        return MfaEnrolment(otpauth_uri=response.otpauth_uri, secret=response.secret)

    def confirm_mfa(self, access_token: str, totp_code: str, *, timeout: float | None = None) -> tuple[str, ...]:
        """Gives the single-use recovery codes."""
        request = pb.ConfirmMFARequest(totp_code=totp_code)
        response = self._unary(self._stub.ConfirmMFA, request, timeout, _bearer(access_token), retryable=False)
        return tuple(response.recovery_codes)

    def get_jwks(self, *, timeout: float | None = None) -> str:
        """The published public keys as JWKS JSON (for :meth:`KeySet.from_jwks`)."""
        return self._unary(self._stub.GetJWKS, pb.GetJWKSRequest(), timeout).jwks_json

    def list_sessions(
        self, access_token: str, *, subject: str = "", include_revoked: bool = False, timeout: float | None = None
    ) -> tuple[SessionInfo, ...]:
        request = pb.ListSessionsRequest(subject=subject, include_revoked=include_revoked)
        response = self._unary(self._stub.ListSessions, request, timeout, _bearer(access_token))
        return tuple(m.session_info(s) for s in response.sessions)

    def watch_revocations(self, cursor: int = 0) -> Iterator[RevocationEvent]:
        """Revocation events after ``cursor``, then live ones, until the stream
        ends. No deadline and no retry: resume from the last ``resume_cursor``."""
        call: Any = self._stub.WatchRevocations(
            pb.WatchRevocationsRequest(cursor=cursor), metadata=with_trace(None)
        )
        try:
            for message in call:
                yield m.revocation_event(message)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        finally:
            call.cancel()
