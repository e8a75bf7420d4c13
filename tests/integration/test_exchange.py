"""ExchangeToken (RFC 8693): delegated access tokens with `act`, the exchange
policy, scope and lifetime limits, and revocation through the session."""

from __future__ import annotations

import base64
import functools
import json
import re
import subprocess
import uuid
from collections.abc import Sequence
from typing import Any

import grpc
import pytest

from authsvc.domain.identity import credentials
from authsvc_client import Actor, AsyncAuthClient, ClientCredential, Reason, Requirements, pb

from ..conftest import TEST_KEK, unique
from ..e2e.procs import AUTHSVC, cli, server_env
from .helpers import ClientCreds, add_user, bearer, login, self_login

ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TXN = "urn:ietf:params:oauth:token-type:txn_token"


async def add_actor(
    store, clock, exchange: Sequence[str] = ("orders",), scopes: Sequence[str] = ("read",)
) -> ClientCreds:
    client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
    await store.create_client(
        client_id, unique("svc"), credentials.digest(secret), scopes, ("gateway",), clock.now(),
        exchange_audiences=exchange,
    )  # fmt: skip
    return ClientCreds(client_id, secret)


def request(actor: ClientCreds, token: str, audience: Sequence[str] = ("orders",), **kw) -> pb.ExchangeTokenRequest:
    return pb.ExchangeTokenRequest(
        client=pb.ClientCredential(client_id=actor.id, client_secret=actor.secret),
        subject_token=token, audience=list(audience), **kw,
    )  # fmt: skip


async def user_token(stub, store, passwords, clock, scope=("read", "write")) -> tuple[pb.TokenPair, str]:
    user = await add_user(store, passwords, clock, scopes=("read", "write"), audiences=("gateway",))
    return await login(stub, user, audience=["gateway"], scope=list(scope)), user.id


async def denied(stub, req: pb.ExchangeTokenRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ExchangeToken(req)
    return err.value.code(), err.value.details() or ""


async def test_exchange_gives_a_narrower_token_that_says_who_acts(stub, store, passwords, clock):
    pair, user_id = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock)
    got = await stub.ExchangeToken(request(gateway, pair.access_token, subject_token_type=ACCESS))
    assert (got.issued_token_type, got.token_type, list(got.scope)) == (ACCESS, "Bearer", ["read"])
    assert 0 < got.expires_in <= pair.expires_in
    answer = await stub.Verify(pb.VerifyRequest(token=got.access_token, audience="orders", required_scope=["read"]))
    assert answer.active
    c = answer.claims
    assert (c.sub, list(c.aud), c.sid, c.client_id) == (user_id, ["orders"], pair.session_id, gateway.id)
    assert c.act.sub == gateway.id and not c.act.HasField("act")
    assert list(c.amr) == ["pwd"]
    # The subject's own token was for the gateway, not for orders.
    assert not (await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders"))).active


async def test_chains_nest_act_and_verify_can_limit_the_hops(stub, store, passwords, clock):
    pair, _ = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock, exchange=("orders",))
    orders = await add_actor(store, clock, exchange=("payments",))
    first = await stub.ExchangeToken(request(gateway, pair.access_token))
    second = await stub.ExchangeToken(request(orders, first.access_token, audience=("payments",)))
    c = (await stub.Verify(pb.VerifyRequest(token=second.access_token, audience="payments"))).claims
    assert (c.act.sub, c.act.act.sub) == (orders.id, gateway.id)  # the latest actor outermost
    for depth, active in ((None, True), (2, True), (1, False), (0, False)):
        verify = pb.VerifyRequest(token=second.access_token, audience="payments")
        if depth is not None:
            verify.max_delegation_depth = depth
        answer = await stub.Verify(verify)
        assert answer.active is active, depth
        if not active:
            assert answer.reason == pb.INACTIVE_REASON_DELEGATION_TOO_DEEP
    # 0 refuses every delegated token, and no undelegated one.
    user_only = pb.VerifyRequest(token=pair.access_token, audience="gateway", max_delegation_depth=0)
    assert (await stub.Verify(user_only)).active


async def test_an_actor_without_exchange_policy_is_refused(stub, store, passwords, clock):
    pair, _ = await user_token(stub, store, passwords, clock)
    nobody = await add_actor(store, clock, exchange=())
    assert await denied(stub, request(nobody, pair.access_token)) == (
        grpc.StatusCode.PERMISSION_DENIED, "audience not allowed for exchange",
    )  # fmt: skip
    gateway = await add_actor(store, clock, exchange=("orders",))
    code, _ = await denied(stub, request(gateway, pair.access_token, audience=("orders", "billing")))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # authsvc's own audience never, whatever a policy says.
    own = await add_actor(store, clock, exchange=("authsvc",))
    code, _ = await denied(stub, request(own, pair.access_token, audience=("authsvc",)))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_scopes_are_at_most_subject_and_actor_scopes(stub, store, passwords, clock):
    pair, _ = await user_token(stub, store, passwords, clock, scope=("read",))
    wide = await add_actor(store, clock, scopes=("read", "write", "admin"))
    for scope in (["write"], ["admin"], ["read", "write"]):  # the subject has read only
        assert (await denied(stub, request(wide, pair.access_token, scope=scope)))[0] == (
            grpc.StatusCode.PERMISSION_DENIED
        )
    narrow_actor = await add_actor(store, clock, scopes=("write",))  # nothing in common with the subject
    assert await denied(stub, request(narrow_actor, pair.access_token)) == (
        grpc.StatusCode.PERMISSION_DENIED, "no scope to delegate",
    )  # fmt: skip
    got = await stub.ExchangeToken(request(wide, pair.access_token, scope=["read"]))
    assert list(got.scope) == ["read"]


async def test_the_actor_authenticates_as_issue_does(stub, store, passwords, clock):
    pair, _ = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock)
    wrong = ClientCreds(gateway.id, gateway.secret[:-1] + ("A" if gateway.secret[-1] != "A" else "B"))
    assert await denied(stub, request(wrong, pair.access_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "invalid credentials",
    )  # fmt: skip
    assert (await denied(stub, request(ClientCreds("c_nobody", "x"), pair.access_token)))[0] == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_a_bad_subject_token_is_an_invalid_request(stub, store, passwords, clock):
    pair, _ = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock)
    forged = pair.access_token[:-4] + ("AAAA" if not pair.access_token.endswith("AAAA") else "BBBB")
    for token in ("not-a-token", forged):
        assert await denied(stub, request(gateway, token)) == (
            grpc.StatusCode.INVALID_ARGUMENT, "invalid subject_token",
        )  # fmt: skip
    for bad in ({"requested_token_type": "urn:example:saml"}, {"subject_token_type": "urn:example:saml"}):
        assert (await denied(stub, request(gateway, pair.access_token, **bad)))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert (await denied(stub, request(gateway, pair.access_token, audience=())))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_lifetime_is_capped_by_the_subject_token_and_expiry_refuses(stub, store, passwords, clock):
    pair, _ = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock)
    clock.advance(pair.expires_in - 40)  # 40 s of the subject token left
    got = await stub.ExchangeToken(request(gateway, pair.access_token))
    assert got.expires_in == 40
    claims = (await stub.Verify(pb.VerifyRequest(token=got.access_token, audience="orders"))).claims
    assert claims.exp == (await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="gateway"))).claims.exp
    clock.advance(100)  # past exp and the leeway
    assert (await denied(stub, request(gateway, pair.access_token)))[0] == grpc.StatusCode.INVALID_ARGUMENT


async def test_revoking_the_session_ends_every_exchanged_token(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock, scopes=("read",), audiences=("gateway",))
    pair = await login(stub, user, audience=["gateway"])
    gateway = await add_actor(store, clock, exchange=("orders",))
    orders = await add_actor(store, clock, exchange=("payments",))
    first = await stub.ExchangeToken(request(gateway, pair.access_token))
    second = await stub.ExchangeToken(request(orders, first.access_token, audience=("payments",)))
    own = await self_login(stub, user)
    await stub.Revoke(pb.RevokeRequest(session_id=pair.session_id), metadata=bearer(own.access_token))
    for token, audience in ((first.access_token, "orders"), (second.access_token, "payments")):
        answer = await stub.Verify(pb.VerifyRequest(token=token, audience=audience))
        assert (answer.active, answer.reason) == (False, pb.INACTIVE_REASON_REVOKED)
    code, _ = await denied(stub, request(gateway, pair.access_token))  # and no new exchange
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_service_token_can_be_exchanged_too(stub, store, clock):
    """A service acting for another service: no session, the subject's own
    client token; revoking the subject still ends it (by subject and iat)."""
    caller = await add_actor(store, clock, exchange=(), scopes=("read",))
    issued = await stub.Issue(
        pb.IssueRequest(client=pb.ClientCredential(client_id=caller.id, client_secret=caller.secret))
    )
    gateway = await add_actor(store, clock)
    got = await stub.ExchangeToken(request(gateway, issued.tokens.access_token))
    c = (await stub.Verify(pb.VerifyRequest(token=got.access_token, audience="orders"))).claims
    assert (c.sub, c.sid, c.act.sub, list(c.amr)) == (caller.id, "", gateway.id, [])



async def test_the_client_package_exchanges_and_reads_act(app, stub, store, passwords, clock):
    pair, user_id = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock)
    async with AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")) as client:
        got = await client.exchange_token(
            ClientCredential(gateway.id, gateway.secret), pair.access_token, audience=["orders"], scope=["read"]
        )
        assert (got.token_type, got.scope) == ("Bearer", ("read",))
        assert got.access_token not in repr(got)
        result = await client.verify(got.access_token, Requirements("orders"))
        assert result.claims is not None and result.claims.act == Actor(gateway.id)
        assert result.claims.sub == user_id and result.claims.raw["act"] == {"sub": gateway.id}
        refused = await client.verify(got.access_token, Requirements("orders", max_delegation_depth=0))
        assert (refused.active, refused.reason) == (False, Reason.DELEGATION_TOO_DEEP)


def test_the_cli_sets_and_lists_the_exchange_policy(database_url, tmp_path):
    env = server_env(database_url, tmp_path, AUTHSVC_KEK=TEST_KEK)
    name = unique("gw")
    printed = cli(env, "client", "add", name, "--scope", "read", "--audience", "gateway",
                  "--exchange-audience", "orders", "--exchange-audience", "payments")  # fmt: skip
    found = re.search(r"client_id:\s+(\S+)", printed)
    assert found, printed
    client_id = found.group(1)

    def listed() -> str:
        """The EXCHANGE column, the last one, of the client's row."""
        table = cli(env, "client", "list").splitlines()
        assert table[0].split()[-1] == "EXCHANGE"
        return next(line for line in table if line.startswith(client_id)).split()[-1]

    assert listed() == "orders,payments"
    said = cli(env, "client", "set", name, "--exchange-audience", "billing")
    assert said == f"exchange audiences of {name}: billing\n"
    assert listed() == "billing"
    cli(env, "client", "set", client_id, "--no-exchange")  # by id as well as by name
    assert listed() == "-"
    refused = subprocess.run([str(AUTHSVC), "client", "set", "nobody-" + name, "--exchange-audience", "x"],
                             env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert (refused.returncode, refused.stderr) == (1, f"error: no client 'nobody-{name}'\n")


# --- Transaction Tokens -----------------------------------------------------------------------------------------


def txn_request(actor: ClientCreds, token: str, trust_domain: str, **kw) -> pb.ExchangeTokenRequest:
    kw.setdefault("scope", ["read"])
    return request(actor, token, audience=(trust_domain,), requested_token_type=TXN, **kw)


def payload(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, body, _ = token.split(".")
    head, claims = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (header, body))
    return head, claims


async def test_a_txn_token_carries_the_draft_claims(stub, store, passwords, clock, settings):
    domain = settings.policy.trust_domain
    pair, user_id = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock, exchange=(domain,))
    got = await stub.ExchangeToken(txn_request(
        gateway, pair.access_token, domain, request_context='{"req_ip": "203.0.113.7", "ua": "shop/1"}',
        request_details='{"action": "BUY", "qty": 2}', purpose="checkout",
    ))  # fmt: skip
    assert (got.issued_token_type, got.token_type, list(got.scope)) == (TXN, "N_A", ["read"])
    assert 0 < got.expires_in <= 60
    header, claims = payload(got.access_token)
    assert header["typ"] == "txntoken+jwt" and set(header) == {"alg", "kid", "typ"}
    assert (claims["iss"], claims["sub"], claims["aud"], claims["sid"]) == (
        settings.policy.issuer, user_id, domain, pair.session_id,
    )  # fmt: skip
    assert claims["exp"] - claims["iat"] == 60 and uuid.UUID(claims["txn"]) and claims["jti"]
    assert (claims["scope"], claims["req_wl"], claims["purp"]) == ("read", gateway.id, "checkout")
    assert claims["tctx"] == {"action": "BUY", "qty": 2}
    assert claims["rctx"] == {"req_ip": "203.0.113.7", "ua": "shop/1", "authn": "pwd", "req_wl": gateway.id}
    assert pair.access_token not in got.access_token  # never the subject's own token inside
    # A Txn-Token is no access token, anywhere.
    answer = await stub.Verify(pb.VerifyRequest(token=got.access_token, audience=domain))
    assert (answer.active, answer.reason) == (False, pb.INACTIVE_REASON_WRONG_TYPE)
    code, _ = await denied(stub, request(gateway, got.access_token, audience=(domain,)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_txn_token_requests_are_checked(stub, store, passwords, clock, settings):
    domain = settings.policy.trust_domain
    pair, _ = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock, exchange=(domain, "orders"))
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    for bad in (
        {"request_context": "not json"}, {"request_context": "[1, 2]"}, {"request_details": '{"a": 1, "a": 2}'},
        {"request_context": '{"req_ip": "not-an-ip"}'}, {"request_context": '{"authn": "face"}'},
        {"request_context": '{"req_wl": "someone-else"}'}, {"request_details": '{"x": "' + "y" * 3000 + '"}'},
        {"scope": []}, {"purpose": "two words"},
    ):
        assert (await denied(stub, txn_request(gateway, pair.access_token, domain, **bad)))[0] == invalid, bad
    assert (await denied(stub, txn_request(gateway, pair.access_token, "orders")))[0] == invalid
    assert (await denied(stub, txn_request(gateway, pair.access_token, domain, scope=["write", "admin"])))[0] == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    elsewhere = await add_actor(store, clock, exchange=("orders",))  # may exchange, but not for the trust domain
    assert (await denied(stub, txn_request(elsewhere, pair.access_token, domain)))[0] == (
        grpc.StatusCode.PERMISSION_DENIED
    )


async def test_a_replacement_keeps_the_transaction_and_narrows(stub, store, passwords, clock, settings):
    domain = settings.policy.trust_domain
    pair, user_id = await user_token(stub, store, passwords, clock)
    gateway = await add_actor(store, clock, exchange=(domain,), scopes=("read", "write"))
    orders = await add_actor(store, clock, exchange=(domain,), scopes=())
    first = await stub.ExchangeToken(txn_request(
        gateway, pair.access_token, domain, scope=["read", "write"], request_details='{"order": 1}', purpose="buy",
    ))  # fmt: skip
    clock.advance(10)
    second = await stub.ExchangeToken(txn_request(
        orders, first.access_token, domain, scope=["read"], subject_token_type=TXN,
        request_details='{"order": 1, "line": 3}', request_context='{"hop": "orders"}',
    ))  # fmt: skip
    _, old = payload(first.access_token)
    _, new = payload(second.access_token)
    for name in ("txn", "sub", "aud", "sid", "iss", "purp"):
        assert new[name] == old[name], name
    assert new["exp"] == old["exp"] and new["iat"] == old["iat"] + 10  # never longer than the one replaced
    assert new["jti"] != old["jti"] and new["sub"] == user_id
    assert (new["scope"], new["req_wl"]) == ("read", f"{gateway.id},{orders.id}")
    assert new["tctx"] == {"order": 1, "line": 3} and new["rctx"] == {**old["rctx"], "hop": "orders"}
    refused = grpc.StatusCode.PERMISSION_DENIED
    replace = functools.partial(txn_request, orders, second.access_token, domain, subject_token_type=TXN)
    assert (await denied(stub, replace(scope=["read", "write"])))[0] == refused  # no widening
    assert (await denied(stub, replace(request_details='{"order": 2}')))[0] == refused  # no editing
    assert (await denied(stub, replace(request_context='{"hop": "elsewhere"}')))[0] == refused
    assert (await denied(stub, replace(purpose="sell")))[0] == refused
    clock.advance(60)  # the replaced token has expired: no replacement, leeway or not
    assert (await denied(stub, replace()))[0] == grpc.StatusCode.INVALID_ARGUMENT
