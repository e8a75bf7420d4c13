"""envoy.service.auth.v3.Authorization/Check against the in-process server:
each kind of token and request, and the answer Envoy gets for it."""

from __future__ import annotations

from urllib.parse import quote

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2 as attrs
from envoy.service.auth.v3 import external_auth_pb2 as ext
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc
from google.rpc import code_pb2

from authsvc.doors.envoy import route_requirements
from authsvc_client import Reason, Requirements, pb

from ..tlsutil import TestCA
from .helpers import add_client, add_user, login
from .test_one_verdict import Corpus, corpus
from .test_one_verdict import _by_rpc as verify_verdict

NO_AUDIENCE = "audience is required (context_extensions or AUTHSVC_ENVOY_DEFAULT_AUDIENCE)"
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


@pytest.fixture(scope="module")
def check(channel) -> ext_grpc.AuthorizationStub:
    return ext_grpc.AuthorizationStub(channel)


def request(authorization: str | None = None, certificate: str = "", **extensions: str) -> ext.CheckRequest:
    headers = {":path": "/orders", "x-authsvc-subject": "someone-else"}
    if authorization is not None:
        headers["authorization"] = authorization
    return ext.CheckRequest(
        attributes=attrs.AttributeContext(
            source=attrs.AttributeContext.Peer(certificate=certificate),
            request=attrs.AttributeContext.Request(http=attrs.AttributeContext.HttpRequest(headers=headers)),
            context_extensions={"audience": "orders", **extensions},
        )
    )


def challenge(response: ext.CheckResponse) -> tuple[int, str]:
    """(HTTP status, WWW-Authenticate) of a denial, checking its shape."""
    assert response.WhichOneof("http_response") == "denied_response"
    denied = response.denied_response
    assert response.status.code in (code_pb2.UNAUTHENTICATED, code_pb2.PERMISSION_DENIED)
    assert denied.body == ""  # never says why
    (header,) = denied.headers
    assert header.header.key == "www-authenticate"
    return denied.status.code, header.header.value


@pytest.fixture
async def user_token(stub, store, passwords, clock) -> pb.TokenPair:
    user = await add_user(store, passwords, clock)
    return await login(stub, user, audience=["orders"], scope=["read"])


async def test_a_valid_token_is_allowed_with_who_it_is_for(check, user_token):
    response = await check.Check(request(f"Bearer {user_token.access_token}", scope="read"))
    assert response.status.code == code_pb2.OK
    ok = response.ok_response
    headers = {h.header.key: h.header.value for h in ok.headers}
    assert set(headers) == {"x-authsvc-subject", "x-authsvc-scope", "x-authsvc-client-id", "x-authsvc-session-id"}
    assert headers["x-authsvc-scope"] == "read"
    assert headers["x-authsvc-session-id"] == user_token.session_id
    assert headers["x-authsvc-subject"] not in ("", "someone-else")
    assert all(h.append_action == OVERWRITE for h in ok.headers)  # a client's own x-authsvc-* is replaced
    assert list(ok.headers_to_remove) == []  # Authorization passes on unless configured otherwise


async def test_the_bearer_scheme_is_case_insensitive(check, user_token):
    for scheme in ("bearer", "BEARER", "BeArEr"):
        response = await check.Check(request(f"{scheme} {user_token.access_token}"))
        assert response.status.code == code_pb2.OK, scheme


async def test_a_client_token_has_no_session_header_and_a_smuggled_one_is_removed(check, stub, store, clock):
    client = await add_client(store, clock)
    credential = pb.ClientCredential(client_id=client.id, client_secret=client.secret)
    issued = await stub.Issue(pb.IssueRequest(client=credential, audience=["orders"]))
    response = await check.Check(request(f"Bearer {issued.tokens.access_token}", scope="orders.read"))
    ok = response.ok_response
    headers = {h.header.key: h.header.value for h in ok.headers}
    assert headers["x-authsvc-subject"] == headers["x-authsvc-client-id"] == client.id
    assert list(ok.headers_to_remove) == ["x-authsvc-session-id"]


async def test_raw_headers_are_read_too(check, user_token):
    """Envoy with ``encode_raw_headers: true`` sends header_map, not headers."""
    raw = base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key="authorization", raw_value=f"Bearer {user_token.access_token}".encode())]
    )
    checked = request()
    checked.attributes.request.http.header_map.CopyFrom(raw)
    assert (await check.Check(checked)).status.code == code_pb2.OK


async def test_no_credentials_get_a_bare_challenge(check):
    for authorization in (None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   "):
        assert challenge(await check.Check(request(authorization))) == (401, 'Bearer realm="orders"'), authorization


async def test_every_bad_token_is_invalid_token(check, user_token):
    token = user_token.access_token
    head, body, sig = token.split(".")
    for name, value, extensions in (
        ("garbage", "Bearer not-a-token", {}),
        ("bad signature", f"Bearer {head}.{body}.{sig[:-4]}AAAA", {}),
        ("too long", "Bearer " + "a" * 9000, {}),
        ("wrong audience", f"Bearer {token}", {"audience": "billing"}),
    ):
        status, www = challenge(await check.Check(request(value, **extensions)))
        audience = extensions.get("audience", "orders")
        assert (status, www) == (401, f'Bearer realm="{audience}", error="invalid_token"'), name


async def test_missing_scope_is_403_naming_what_the_route_needs(check, user_token):
    response = await check.Check(request(f"Bearer {user_token.access_token}", scope="read write"))
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert challenge(response) == (403, 'Bearer realm="orders", error="insufficient_scope", scope="read write"')


async def test_time_rules_follow_the_clock(check, user_token, clock):
    value = f"Bearer {user_token.access_token}"
    assert (await check.Check(request(value, max_auth_age="60"))).status.code == code_pb2.OK
    clock.advance(120)
    assert challenge(await check.Check(request(value, max_auth_age="60"))) == (
        401,
        'Bearer realm="orders", error="insufficient_user_authentication", max_age=60',
    )
    assert (await check.Check(request(value))).status.code == code_pb2.OK
    clock.advance(300 - 120 + 31)  # past exp plus the leeway
    assert challenge(await check.Check(request(value))) == (401, 'Bearer realm="orders", error="invalid_token"')


async def test_a_route_can_require_an_encrypted_token(check, user_token):
    value = f"Bearer {user_token.access_token}"  # signed, not encrypted
    assert (await check.Check(request(value, require_encrypted="false"))).status.code == code_pb2.OK
    assert challenge(await check.Check(request(value, require_encrypted="true"))) == (
        401,
        'Bearer realm="orders", error="invalid_token"',
    )


async def test_a_revoked_token_is_refused_at_once(check, stub, user_token):
    value = f"Bearer {user_token.access_token}"
    assert (await check.Check(request(value))).status.code == code_pb2.OK
    assert (await stub.Revoke(pb.RevokeRequest(token=user_token.access_token))).revoked == 1
    assert challenge(await check.Check(request(value))) == (401, 'Bearer realm="orders", error="invalid_token"')


async def test_the_certificate_envoy_saw_is_the_one_compared(check, user_token):
    """Tokens are bound over mTLS only (tests/tls, and the Envoy e2e test for
    a bound token from another certificate); here the door's part: the
    certificate Envoy passes becomes the thumbprint the rules compare, and an
    unbound token does not need one."""
    cert = TestCA().issue("billing", uri="spiffe://test.example/billing")
    encoded = quote(cert.cert_pem.decode(), safe="")  # what Envoy sends: URL-encoded PEM
    assert route_requirements(request(certificate=encoded), None).cert_thumbprint == cert.thumbprint
    response = await check.Check(request(f"Bearer {user_token.access_token}", certificate=encoded))
    assert response.status.code == code_pb2.OK


async def test_unreadable_routes_and_requests_are_invalid_argument(check, channel, user_token):
    value = f"Bearer {user_token.access_token}"
    for name, bad, message in (
        ("no audience", request(value, audience=""), NO_AUDIENCE),
        ("negative age", request(value, max_auth_age="-1"), "max_auth_age must be a number of seconds"),
        ("words for an age", request(value, max_auth_age="ten"), "max_auth_age must be a number of seconds"),
        ("a certificate that is not", request(value, certificate="junk"), "source certificate is malformed"),
        ("huge certificate", request(value, certificate="A" * 20000), "source certificate is too long"),
        ("bad scope", request(value, scope="a\x00b"), "required_scope is malformed"),
        ("yes for a flag", request(value, require_encrypted="yes"), "require_encrypted must be true or false"),
        ("words for a depth", request(value, max_delegation_depth="two"), DEPTH_MESSAGE),
        ("a depth past any chain", request(value, max_delegation_depth="65"), DEPTH_MESSAGE),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await check.Check(bad)
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message), name
    raw = channel.unary_unary("/envoy.service.auth.v3.Authorization/Check")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(b"\xff\xff\xff")
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "malformed request")


DEPTH_MESSAGE = "max_delegation_depth must be a number of actors"


async def test_a_stale_replica_fails_closed(check, app, user_token):
    assert app.deps is not None
    app.deps.live.current = False
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await check.Check(request(f"Bearer {user_token.access_token}"))
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "service unavailable, retry later",
        )
    finally:
        app.deps.live.current = True


async def test_checks_are_counted_in_the_metrics(check, app, user_token):
    await check.Check(request(f"Bearer {user_token.access_token}"))
    assert 'authsvc_rpc_total{method="Check",code="OK"}' in app.metrics.render()


async def test_check_and_verify_give_one_verdict_on_every_token(app, stub, check, clock):
    """Issue 12's corpus (tests/integration/test_one_verdict.py) through both
    doors: Check allows exactly what Verify calls active, and refuses the rest
    with the status and challenge its reason maps to. Left out: the two cases
    that name a made-up thumbprint (a Check takes a certificate, not a
    thumbprint: the certificate tests cover it; "bound, no cert" stays), and
    the tokens with a leading space or a trailing newline, which no header can
    carry (``Bearer  <token>`` is the token itself: RFC 6750 2.1 allows 1*SP,
    and HTTP trims a field value, RFC 9110 5.5)."""
    cases = [
        c for c in corpus(Corpus(app, clock.now())) if not c.requirements.cert_thumbprint and c.token == c.token.strip()
    ]
    assert len(cases) >= 300
    differ, counts = [], {"allowed": 0, "refused": 0}
    for case in cases:
        active, reason, _ = await verify_verdict(stub, case)
        r = case.requirements
        depth = "" if r.max_delegation_depth is None else str(r.max_delegation_depth)
        extensions = {"audience": r.audience, "scope": " ".join(r.scopes), "max_auth_age": str(r.max_auth_age),
                      "require_encrypted": str(r.require_encrypted).lower(), "max_delegation_depth": depth}  # fmt: skip
        response = await check.Check(request(f"Bearer {case.token}", **extensions))
        if active:
            counts["allowed"] += 1
            verdict_ok = response.status.code == code_pb2.OK
        else:
            counts["refused"] += 1
            assert reason is not None
            status = 403 if reason is Reason.MISSING_SCOPE else 401
            verdict_ok = response.status.code != code_pb2.OK and challenge(response) == (
                status, www_authenticate(reason, r)
            )
        if not verdict_ok:
            differ.append(f"{case.name}: Verify {(active, reason)}, Check {response}")
    assert differ == []
    assert counts["allowed"] >= 20 and counts["refused"] >= 100


def www_authenticate(reason: Reason, r: Requirements) -> str:
    realm = f'Bearer realm="{r.audience}"'
    if reason is Reason.MISSING_SCOPE:
        return f'{realm}, error="insufficient_scope", scope="{" ".join(r.scopes)}"'
    if reason is Reason.AUTH_TOO_OLD:
        return f'{realm}, error="insufficient_user_authentication", max_age={r.max_auth_age}'
    return f'{realm}, error="invalid_token"'
