"""Issue with a password and with client credentials."""

from __future__ import annotations

import time

import grpc
import pytest

from authsvc_client import pb

from .helpers import PASSWORD, add_client, add_user, login


async def test_password_login_gives_pair_with_rfc9068_claims(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user, audience=["orders"], scope=["read"])
    assert pair.token_type == "Bearer"
    assert pair.expires_in == 300
    assert pair.refresh_token.count(".") == 1
    assert list(pair.scope) == ["read"]
    resp = await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders", required_scope=["read"]))
    assert resp.active
    c = resp.claims
    assert (c.iss, c.sub, list(c.aud), c.sid) == ("authsvc-test", user.id, ["orders"], pair.session_id)
    assert c.exp - c.iat == 300 and c.nbf == c.iat and c.jti
    assert list(c.amr) == ["pwd"] and c.acr == "aal1" and c.auth_time == c.iat


async def test_empty_request_grants_everything_allowed(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock, scopes=("a", "b"), audiences=("orders", "billing"))
    pair = await login(stub, user)
    resp = await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="orders"))
    assert sorted(resp.claims.aud) == ["billing", "orders"]  # authsvc's own only when asked for
    assert sorted(resp.claims.scope) == ["a", "b"]


async def test_authsvc_audience_is_only_ever_alone(stub, store, passwords, clock):
    """A token a service receives must never also work at authsvc's
    self-service calls (the service could enrol MFA or revoke as the user)."""
    user = await add_user(store, passwords, clock, audiences=("orders",))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await login(stub, user, audience=["authsvc", "orders"])
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    own = await login(stub, user, audience=["authsvc"])
    assert (await stub.Verify(pb.VerifyRequest(token=own.access_token, audience="authsvc"))).claims.aud == ["authsvc"]
    lonely = await add_user(store, passwords, clock, audiences=())
    alone = await login(stub, lonely)  # nothing else to be for
    assert (await stub.Verify(pb.VerifyRequest(token=alone.access_token, audience="authsvc"))).active


async def test_wrong_password_and_unknown_user_get_the_same_answer(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    answers = []
    timings = []
    for name, password in ((user.name, "wrong password!"), ("nobody-" + user.name, PASSWORD)):
        start = time.perf_counter()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Issue(pb.IssueRequest(password=pb.PasswordCredential(username=name, password=password)))
        timings.append(time.perf_counter() - start)
        answers.append((err.value.code(), err.value.details()))
    assert answers[0] == answers[1] == (grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
    # Both paths run one argon2 check; neither is an order of magnitude cheaper.
    assert min(timings) > max(timings) / 5


async def test_scope_or_audience_beyond_allowed_is_denied(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock, scopes=("read",))
    for extra in ({"scope": ["admin"]}, {"audience": ["billing"]}):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Issue(
                pb.IssueRequest(password=pb.PasswordCredential(username=user.name, password=user.password), **extra)
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_client_credentials_give_access_token_only(stub, store, clock):
    client = await add_client(store, clock)
    resp = await stub.Issue(
        pb.IssueRequest(
            client=pb.ClientCredential(client_id=client.id, client_secret=client.secret), audience=["billing"]
        )
    )
    pair = resp.tokens
    assert pair.access_token and not pair.refresh_token and not pair.session_id
    verified = await stub.Verify(pb.VerifyRequest(token=pair.access_token, audience="billing"))
    assert verified.active
    assert verified.claims.sub == client.id == verified.claims.client_id
    assert not verified.claims.sid


async def test_bad_client_secret_and_unknown_client_are_unauthenticated(stub, store, clock):
    client = await add_client(store, clock)
    for cid, secret in ((client.id, client.secret + "x"), ("c_unknown", client.secret)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Issue(pb.IssueRequest(client=pb.ClientCredential(client_id=cid, client_secret=secret)))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.value.details() == "invalid credentials"


async def test_login_attempts_are_audited_without_secrets(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Issue(pb.IssueRequest(password=pb.PasswordCredential(username=user.name, password="bad guess 1")))
    await login(stub, user)
    rows = await store._pool.fetch("SELECT event, detail FROM audit_log WHERE subject = $1 ORDER BY seq", user.id)
    assert [r["event"] for r in rows] == ["login_failed", "login_ok"]
    assert all("bad guess" not in r["detail"] and PASSWORD not in r["detail"] for r in rows)


async def test_secrets_are_stored_only_as_hashes(stub, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    pair = await login(stub, user)
    token_id, secret = pair.refresh_token.split(".")
    row = await store._pool.fetchrow("SELECT * FROM refresh_tokens WHERE id = $1", token_id)
    assert secret.encode() not in bytes(row["secret_hash"]) and len(row["secret_hash"]) == 32
    urow = await store._pool.fetchrow("SELECT password_hash FROM users WHERE id = $1::uuid", user.id)
    assert urow["password_hash"].startswith("$argon2id$")
    krow = await store._pool.fetchrow("SELECT private_sealed, public_jwk FROM signing_keys LIMIT 1")
    assert '"d"' not in krow["public_jwk"]
