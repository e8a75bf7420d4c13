"""Bad input on every RPC: a clear status and a fixed message, never a crash."""

from __future__ import annotations

import grpc
import pytest

from authsvc.errors import BearerMalformed, BearerMissing, BearerWrongAudience
from authsvc_client import pb

from .helpers import add_user, bearer, login

INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
BIG = "x" * 5000
HUGE = "x" * (70 * 1024)
NO_BEARER = BearerMissing("authsvc").message


def pw(username: str = "someone", password: str = "password") -> pb.IssueRequest:
    return pb.IssueRequest(password=pb.PasswordCredential(username=username, password=password))


CASES = [
    ("Issue", pb.IssueRequest(), INVALID, "a credential is required"),
    ("Issue", pw(username=""), INVALID, "username is required"),
    ("Issue", pw(password=""), INVALID, "password is required"),
    ("Issue", pw(username=BIG), INVALID, "username is too long"),
    ("Issue", pw(password=BIG), INVALID, "password is too long"),
    ("Issue", pw(username="a\x00b"), INVALID, "username is malformed"),
    ("Issue", pb.IssueRequest(password=pw().password, scope=["a b"]), INVALID, None),
    ("Issue", pb.IssueRequest(password=pw().password, scope=["s"] * 40), INVALID, None),
    ("Issue", pb.IssueRequest(client=pb.ClientCredential()), INVALID, "client_id is required"),
    ("Issue", pb.IssueRequest(client=pb.ClientCredential(client_id="c", client_secret="s")), UNAUTH, None),
    ("ChallengeMFA", pb.ChallengeMFARequest(), INVALID, "challenge_id is required"),
    ("ChallengeMFA", pb.ChallengeMFARequest(challenge_id="nope"), INVALID, "code is required"),
    ("ChallengeMFA", pb.ChallengeMFARequest(challenge_id="nope", totp_code="123456"), UNAUTH, "invalid credentials"),
    ("ChallengeMFA", pb.ChallengeMFARequest(challenge_id="nope", totp_code=BIG), INVALID, "code is too long"),
    ("Refresh", pb.RefreshRequest(), INVALID, "refresh_token is required"),
    ("Refresh", pb.RefreshRequest(refresh_token="x" * 9000), INVALID, "refresh_token is too long"),
    ("Refresh", pb.RefreshRequest(refresh_token="\u00e9\u00e9.\u00e9"), UNAUTH, "invalid credentials"),
    ("Revoke", pb.RevokeRequest(), INVALID, "a token, session_id or subject is required"),
    ("Revoke", pb.RevokeRequest(token=""), INVALID, "token is required"),
    ("Revoke", pb.RevokeRequest(session_id="not-a-uuid"), INVALID, "session_id is malformed"),
    ("Revoke", pb.RevokeRequest(session_id="6f1c0e0a-2b7e-4b43-9d55-2a9f3c1d1e11"), UNAUTH, NO_BEARER),
    ("Revoke", pb.RevokeRequest(subject="someone"), UNAUTH, NO_BEARER),
    ("EnrollMFA", pb.EnrollMFARequest(), UNAUTH, NO_BEARER),
    ("ConfirmMFA", pb.ConfirmMFARequest(), INVALID, "totp_code is required"),
    ("ConfirmMFA", pb.ConfirmMFARequest(totp_code="123456"), UNAUTH, NO_BEARER),
    ("ListSessions", pb.ListSessionsRequest(subject="someone"), UNAUTH, NO_BEARER),
    # Over AUTHSVC_MAX_MESSAGE_BYTES: INVALID_ARGUMENT as the proto says, never
    # RESOURCE_EXHAUSTED (throttling: a client would wait and send it again).
    ("Verify", pb.VerifyRequest(token=HUGE, audience="a"), INVALID, "request is too large"),
    ("Issue", pw(password=HUGE), INVALID, "request is too large"),
    ("Refresh", pb.RefreshRequest(refresh_token=HUGE), INVALID, "request is too large"),
]


@pytest.mark.parametrize(("method", "request_", "code", "message"), CASES)
async def test_bad_requests(stub, method, request_, code, message):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, method)(request_)
    assert err.value.code() == code, err.value.details()
    if message is not None:
        assert err.value.details() == message


async def test_self_service_calls_say_what_their_bearer_token_lacks(stub, store, passwords, clock):
    """No token, no ``Bearer `` prefix and a wrong audience each get their own
    fixed message naming the requirement; a token that fails for any other
    reason (forged, not an access token) still gets the generic one."""
    user = await add_user(store, passwords, clock)
    orders = await login(stub, user, audience=["orders"])  # not for authsvc itself
    head, _, _ = orders.access_token.rpartition(".")
    forged = head + ".AAAA"
    no_bearer, malformed = BearerMissing("authsvc").message, BearerMalformed().message
    wrong_audience = BearerWrongAudience("authsvc").message
    assert len({no_bearer, malformed, wrong_audience, "invalid credentials"}) == 4
    cases = [
        ((), no_bearer),
        ((("authorization", orders.access_token),), malformed),  # the token without "Bearer "
        ((("authorization", f"Basic {orders.access_token}"),), malformed),
        ((("authorization", "Bearer"),), malformed),
        ((("authorization", "Bearer   "),), malformed),
        (bearer(orders.access_token), wrong_audience),
        (bearer(orders.refresh_token), "invalid credentials"),
        (bearer(forged), "invalid credentials"),
    ]
    calls = (
        lambda md: stub.EnrollMFA(pb.EnrollMFARequest(), metadata=md),
        lambda md: stub.ConfirmMFA(pb.ConfirmMFARequest(totp_code="123456"), metadata=md),
        lambda md: stub.ListSessions(pb.ListSessionsRequest(subject=user.id), metadata=md),
        lambda md: stub.Revoke(pb.RevokeRequest(subject=user.id), metadata=md),
    )
    for metadata, message in cases:
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(metadata)
            assert (err.value.code(), err.value.details()) == (UNAUTH, message), metadata
            for secret in (orders.access_token, orders.refresh_token, user.password):
                assert secret not in (err.value.details() or "")
    assert "audience authsvc alone" in no_bearer and "Bearer <access token>" in no_bearer


async def test_raw_garbage_bytes_do_not_crash_the_server(channel, stub):
    call = channel.unary_unary("/authsvc.v1.AuthService/Issue")
    for payload in (b"\xff\xff\xff\xff", b"\x0a\x05abc", bytes(range(256))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(payload)
        assert (err.value.code(), err.value.details()) == (INVALID, "malformed request")
    unknown = channel.unary_unary("/authsvc.v1.AuthService/NoSuchMethod")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await unknown(b"")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert (await stub.GetJWKS(pb.GetJWKSRequest())).jwks_json  # still serving


async def test_an_oversize_watch_request_is_invalid_argument(channel):
    call = channel.unary_stream("/authsvc.v1.AuthService/WatchRevocations")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call(b"\x08\x01" + b"\x00" * (70 * 1024)):
            pass
    assert (err.value.code(), err.value.details()) == (INVALID, "request is too large")
