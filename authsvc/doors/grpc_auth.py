"""authsvc.v1.AuthService: parse, call one use case, convert, return."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import cast

from google.protobuf.message import DecodeError

from authsvc.domain.deps import Deps
from authsvc.domain.identity import enrolment, login
from authsvc.domain.models import TokenPair
from authsvc.domain.sessions import listing, refresh, revoke, watch
from authsvc.domain.tokens import exchange
from authsvc.doors import convert
from authsvc.doors.convert import Context
from authsvc.doors.grpc_status import abort_internal, abort_with, rpc
from authsvc.doors.registry import OVERSIZE
from authsvc.errors import AuthError, InvalidArgument
from authsvc.metrics import Metrics
from authsvc_client import MAX_TOKEN_LENGTH, Requirements, TokenRejected, pb
from authsvc_client import grpc as pb_grpc

log = logging.getLogger(__name__)

#: Verify requests kept parsed, each with its answer serialized: only requests
#: whose token verified, of at most 4 KiB (about 2 KB an entry for a usual
#: token, at most about 10 KB).
VERIFY_REQUEST_CACHE_SIZE = 4096
VERIFY_REQUEST_CACHE_MAX_BYTES = 4096
REQUIREMENTS_CACHE_SIZE = 256

class _SeenRequest:
    """A Verify request parsed and checked, and its answer once made."""

    __slots__ = ("answer", "requirements", "token")

    def __init__(self, token: str, requirements: Requirements) -> None:
        self.token = token
        self.requirements = requirements
        self.answer: bytes | None = None  # the serialized VerifyResponse, when the token was active


_Asked = tuple[str, tuple[str, ...], str, int, bool, int | None]


def _read_verify_request(data: bytes, checked: dict[_Asked, Requirements]) -> _SeenRequest:
    """Parse and check a Verify request; ``checked`` keeps requirements
    already checked (callers ask for the same few over and over)."""
    try:
        request = pb.VerifyRequest.FromString(data)
    except DecodeError:
        raise InvalidArgument("malformed request") from None
    token = request.token
    if not token:
        raise InvalidArgument("token is required")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidArgument("token is too long")
    depth = request.max_delegation_depth if request.HasField("max_delegation_depth") else None
    asked = (
        request.audience, tuple(request.required_scope), request.cert_thumbprint, request.max_auth_age_seconds,
        request.require_encrypted, depth,
    )  # fmt: skip
    requirements = checked.get(asked)
    if requirements is None:  # checked once per distinct set of requirements
        requirements = convert.requirements(*asked)
        if len(checked) >= REQUIREMENTS_CACHE_SIZE:
            checked.clear()
        checked[asked] = requirements
    return _SeenRequest(token, requirements)


class AuthServicer(pb_grpc.AuthServiceServicer):
    def __init__(self, deps: Deps, metrics: Metrics | None = None) -> None:
        self._deps = deps
        self._metrics = metrics or Metrics()
        self._verify_requests: OrderedDict[bytes, _SeenRequest] = OrderedDict()
        # Verify's (audience, scopes, thumbprint, max age, encrypted, max depth)
        # -> checked Requirements: callers ask for the same few over and over.
        self._requirements: dict[_Asked, Requirements] = {}

    @rpc
    async def Issue(self, request: pb.IssueRequest, context: Context) -> pb.IssueResponse:
        call = convert.call_info(context)
        which = request.WhichOneof("credential")
        aud, scope = list(request.audience), list(request.scope)
        if which == "password":
            p = request.password
            result = await login.issue_with_password(self._deps, p.username, p.password, aud, scope, call)
        elif which == "client":
            c = request.client
            result = await login.issue_with_client(self._deps, c.client_id, c.client_secret, aud, scope, call)
        else:
            raise InvalidArgument("a credential is required")
        if isinstance(result, TokenPair):
            return pb.IssueResponse(tokens=convert.token_pair(result))
        return pb.IssueResponse(mfa_challenge=convert.mfa_challenge(result))

    @rpc
    async def ChallengeMFA(
        self, request: pb.ChallengeMFARequest, context: Context
    ) -> pb.ChallengeMFAResponse:
        pair = await login.challenge_mfa(
            self._deps, request.challenge_id, request.totp_code, request.recovery_code, convert.call_info(context)
        )
        return pb.ChallengeMFAResponse(tokens=convert.token_pair(pair))

    @rpc
    async def Verify(self, request: bytes, context: Context) -> bytes:  # type: ignore[override]  # see registry.py
        # The hot path. A service asks about the same token with the same
        # requirements over and over, so what its request parses to is kept
        # under the request's bytes: a repeat skips the protobuf parse and the
        # requirement checks. Identical bytes can only parse the same way.
        seen = self._verify_requests.get(request) if len(request) <= VERIFY_REQUEST_CACHE_MAX_BYTES else None
        if seen is None:
            seen = _read_verify_request(request, self._requirements)
        try:
            # Synchronous on purpose: moving the signature check to a thread
            # measured slower (2.3k/s against 3.4k/s): GIL hand-offs cost more
            # than the check, which takes about 60 us.
            claims = self._deps.live.verify(seen.token, seen.requirements)
        except TokenRejected as rejected:
            self._metrics.verify_outcomes[rejected.reason.name] += 1
            return convert.inactive(rejected.reason).SerializeToString()
        self._metrics.verify_outcomes["ACTIVE"] += 1
        answer = seen.answer
        if answer is None:  # a request not kept: its token has just passed every rule for the first time
            # What is left, the answer, depends on the token's claims alone: made once.
            answer = seen.answer = pb.VerifyResponse(active=True, claims=convert.claims(claims)).SerializeToString()
            if len(request) <= VERIFY_REQUEST_CACHE_MAX_BYTES:
                # Only tokens that verified are kept: junk cannot take the room.
                # Bounded: the oldest goes for a new one (one out, one in: no stalls).
                if len(self._verify_requests) >= VERIFY_REQUEST_CACHE_SIZE:
                    self._verify_requests.popitem(last=False)
                self._verify_requests[request] = seen
        return answer

    @rpc
    async def Refresh(self, request: pb.RefreshRequest, context: Context) -> pb.RefreshResponse:
        pair = await refresh.refresh(
            self._deps, request.refresh_token, list(request.scope), convert.call_info(context)
        )
        return pb.RefreshResponse(tokens=convert.token_pair(pair))

    @rpc
    async def Revoke(self, request: pb.RevokeRequest, context: Context) -> pb.RevokeResponse:
        call = convert.call_info(context)
        which = request.WhichOneof("target")
        if which == "token":
            count = await revoke.revoke_token(self._deps, request.token, call)
        elif which == "session_id":
            count = await revoke.revoke_session(self._deps, request.session_id, convert.bearer(context), call)
        elif which == "subject":
            count = await revoke.revoke_subject(self._deps, request.subject, convert.bearer(context), call)
        else:
            raise InvalidArgument("a token, session_id or subject is required")
        return pb.RevokeResponse(revoked=count)

    @rpc
    async def EnrollMFA(
        self, request: pb.EnrollMFARequest, context: Context
    ) -> pb.EnrollMFAResponse:
        result = await enrolment.enroll(self._deps, convert.bearer(context), convert.call_info(context))
        return pb.EnrollMFAResponse(otpauth_uri=result.otpauth_uri, secret=result.secret)

    @rpc
    async def ConfirmMFA(
        self, request: pb.ConfirmMFARequest, context: Context
    ) -> pb.ConfirmMFAResponse:
        codes = await enrolment.confirm(
            self._deps, convert.bearer(context), request.totp_code, convert.call_info(context)
        )
        return pb.ConfirmMFAResponse(recovery_codes=codes)

    @rpc
    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        found = await listing.list_sessions(
            self._deps, convert.bearer(context), request.subject, request.include_revoked, convert.call_info(context)
        )
        return pb.ListSessionsResponse(sessions=[convert.session_info(s) for s in found])

    async def WatchRevocations(
        self, request: pb.WatchRevocationsRequest, context: Context
    ) -> AsyncIterator[pb.RevocationEvent]:
        oversize = cast(object, request) is OVERSIZE  # see registry.py: what grpc hands over is not always a message
        if request is None or oversize:
            message = "request is too large" if oversize else "malformed request"
            await abort_with(context, InvalidArgument(message))
            return
        try:
            async for entry, resume in watch.revocations(self._deps, request.cursor):
                if entry is None:  # the backlog is complete: from here the watcher is current
                    yield pb.RevocationEvent(kind=pb.RevocationEvent.KIND_CAUGHT_UP, resume_cursor=resume)
                else:
                    yield convert.revocation_event(entry, resume)
        except AuthError as exc:
            error: AuthError | None = exc
        except Exception:
            log.exception("unexpected error in WatchRevocations")
            error = None
        else:
            return
        if error is not None:
            await abort_with(context, error)
        else:
            await abort_internal(context)

    @rpc
    async def ExchangeToken(
        self, request: pb.ExchangeTokenRequest, context: Context
    ) -> pb.ExchangeTokenResponse:
        result = await exchange.exchange(self._deps, convert.exchange_request(request), convert.call_info(context))
        return convert.exchanged(result)

    @rpc
    async def GetJWKS(self, request: pb.GetJWKSRequest, context: Context) -> pb.GetJWKSResponse:
        return pb.GetJWKSResponse(jwks_json=self._deps.live.keyring.jwks_json)
