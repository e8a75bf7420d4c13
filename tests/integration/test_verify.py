"""Verify: introspection semantics, every reason a token is not active."""

from __future__ import annotations

import grpc
import pytest

from authsvc_client import pb

from .helpers import add_user, login

R = pb.InactiveReason


@pytest.fixture
async def token(stub, store, passwords, clock) -> str:
    user = await add_user(store, passwords, clock)
    return (await login(stub, user, audience=["orders"], scope=["read"])).access_token


async def verify(stub, token: str, **kw) -> pb.VerifyResponse:
    kw.setdefault("audience", "orders")
    return await stub.Verify(pb.VerifyRequest(token=token, **kw))


async def test_inactive_reasons(stub, token, clock):
    head, body, sig = token.split(".")
    cases = {
        "garbage": ("not a token", R.INACTIVE_REASON_MALFORMED, {}),
        "two parts": (f"{head}.{body}", R.INACTIVE_REASON_MALFORMED, {}),
        "bad signature": (f"{head}.{body}.{sig[:-4]}AAAA", R.INACTIVE_REASON_BAD_SIGNATURE, {}),
        "wrong audience": (token, R.INACTIVE_REASON_WRONG_AUDIENCE, {"audience": "billing"}),
        "missing scope": (token, R.INACTIVE_REASON_MISSING_SCOPE, {"required_scope": ["write"]}),
        "cert binding not required for unbound": (token, R.INACTIVE_REASON_UNSPECIFIED, {"cert_thumbprint": "abc"}),
    }
    for name, (tok, reason, kw) in cases.items():
        resp = await verify(stub, tok, **kw)
        assert resp.reason == reason, name
        assert resp.active == (reason == R.INACTIVE_REASON_UNSPECIFIED), name


async def test_expiry_and_auth_age_follow_the_clock(stub, token, clock):
    assert (await verify(stub, token, max_auth_age_seconds=60)).active
    clock.advance(120)
    assert (await verify(stub, token, max_auth_age_seconds=60)).reason == R.INACTIVE_REASON_AUTH_TOO_OLD
    clock.advance(300 - 120 + 31)  # past exp plus the 30 s leeway
    assert (await verify(stub, token)).reason == R.INACTIVE_REASON_EXPIRED


async def test_token_from_the_future_is_not_yet_valid(stub, token, clock):
    clock.advance(-120)
    try:
        assert (await verify(stub, token)).reason == R.INACTIVE_REASON_NOT_YET_VALID
    finally:
        clock.advance(120)


async def test_malformed_requests_are_invalid_argument(stub, token):
    for request, message in (
        (pb.VerifyRequest(audience="orders"), "token is required"),
        (pb.VerifyRequest(token=token), "audience is required"),
        (pb.VerifyRequest(token="x" * 9000, audience="orders"), "token is too long"),
        (pb.VerifyRequest(token=token, audience="orders", max_auth_age_seconds=-1), None),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Verify(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        if message:
            assert err.value.details() == message


async def test_jwks_has_public_keys_only(stub):
    import json

    jwks = json.loads((await stub.GetJWKS(pb.GetJWKSRequest())).jwks_json)
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert key["alg"] == "EdDSA" and key["use"] == "sig" and key["kid"]
        assert not {"d", "p", "q", "k"} & key.keys()


async def test_verified_tokens_are_kept_up_to_the_bound(app, stub, store, passwords, clock, monkeypatch):
    monkeypatch.setattr(app.deps.live, "verified_cache_size", 3)
    user = await add_user(store, passwords, clock)
    tokens = [(await login(stub, user, audience=["orders"])).access_token for _ in range(5)]
    for token in tokens:
        assert (await verify(stub, token)).active
    kept = app.deps.live._verified
    assert list(kept) == tokens[2:]  # one out for one in
    assert (await verify(stub, tokens[0])).active  # checked again, and kept again
    assert list(kept) == [*tokens[3:], tokens[0]]


async def test_a_request_seen_before_meets_every_rule_again(app, stub, store, passwords, clock):
    """Verify keeps the requests it parsed, by their bytes; the rules of the
    moment run on every call all the same."""
    user = await add_user(store, passwords, clock)
    revoked = (await login(stub, user, audience=["orders"])).access_token
    expiring = (await login(stub, user, audience=["orders"])).access_token
    for _ in range(2):
        assert (await verify(stub, revoked)).active
        assert (await verify(stub, expiring)).active
    request = pb.VerifyRequest(token=revoked, audience="orders").SerializeToString()
    assert request in app.servicer._verify_requests  # the repeats above were look-ups
    await stub.Revoke(pb.RevokeRequest(token=revoked))
    assert (await verify(stub, revoked)).reason == R.INACTIVE_REASON_REVOKED
    clock.advance(300 + 31)  # past exp plus the 30 s leeway
    assert (await verify(stub, expiring)).reason == R.INACTIVE_REASON_EXPIRED


async def test_requests_whose_token_fails_are_not_kept(app, stub, token):
    head, body, _ = token.split(".")
    for forged in ("not a token", f"{head}.{body}.{'A' * 86}"):
        for _ in range(2):
            assert not (await verify(stub, forged)).active
        request = pb.VerifyRequest(token=forged, audience="orders").SerializeToString()
        assert request not in app.servicer._verify_requests  # junk cannot take the room


async def test_large_requests_are_answered_but_not_kept(app, channel, token):
    # A valid token in a request over 4 KiB: an unknown field (number 99,
    # length-delimited) pads it, and protobuf parsers skip unknown fields.
    request = pb.VerifyRequest(token=token, audience="orders").SerializeToString()
    padded = request + b"\x9a\x06" + _varint(5000) + b"x" * 5000
    assert len(padded) > 4096
    verify_raw = channel.unary_unary(
        "/authsvc.v1.AuthService/Verify", request_serializer=None, response_deserializer=pb.VerifyResponse.FromString
    )
    for _ in range(2):
        assert (await verify_raw(padded)).active
    assert padded not in app.servicer._verify_requests
    assert all(len(kept) <= 4096 for kept in app.servicer._verify_requests)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])
