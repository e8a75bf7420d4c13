"""Issue 3: nested JWTs (sign, then encrypt) with per-audience keys, read by
an independent JOSE library; weak algorithms refused on input."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator

import grpc
import jwt as pyjwt
import pytest
from joserfc import jwe as rfc_jwe
from joserfc import jwk as rfc_jwk
from jwcrypto import jwe, jwk

from authsvc.config import ConfigError, Settings
from authsvc.domain.tokens.encryption import BadEncryptionKey, parse_audience_key
from authsvc.domain.tokens.mint import Grant, mint_access_token
from authsvc.server import App
from authsvc_client import KeySet, Reason, Requirements, TokenRejected, pb, verify_access_token
from authsvc_client import grpc as pb_grpc

from ..conftest import unique
from ..support import FakeClock
from .helpers import add_client

R = pb.InactiveReason


def header(token: str) -> dict[str, str]:
    head = token.split(".", maxsplit=1)[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


@pytest.fixture(scope="module")
async def encrypting(settings, database_url) -> AsyncIterator[tuple[App, pb_grpc.AuthServiceAsyncStub]]:
    policy = dataclasses.replace(settings.policy, encrypt_tokens=True)
    async with (
        App(dataclasses.replace(settings, policy=policy), database_url, clock=FakeClock()) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch,
    ):
        yield app, pb_grpc.AuthServiceStub(ch)


async def issue(stub, client, audience: str) -> str:
    cred = pb.ClientCredential(client_id=client.id, client_secret=client.secret)
    return (await stub.Issue(pb.IssueRequest(client=cred, audience=[audience]))).tokens.access_token


async def register(app: App, audience: str, private: jwk.JWK, alg: str) -> str:
    public = {**private.export_public(as_dict=True), "alg": alg, "use": "enc"}
    key = parse_audience_key(audience, json.dumps(public))
    assert app.deps is not None
    await app.deps.store.set_audience_key(key, app.clock.now())
    await app.maintain_keys()
    return key.kid


async def test_without_a_registered_key_tokens_are_opaque_but_verify(encrypting, store, clock):
    app, stub = encrypting
    client = await add_client(store, clock, audiences=("billing",))
    token = await issue(stub, client, "billing")
    assert token.count(".") == 4
    head = header(token)
    assert (head["alg"], head["enc"], head["cty"]) == ("ECDH-ES+A256KW", "A256GCM", "JWT")
    assert head["kid"] in app.deps.live.encryptor.decryption_keys
    assert client.id not in token  # nothing readable on the wire
    resp = await stub.Verify(pb.VerifyRequest(token=token, audience="billing"))
    assert resp.active and resp.claims.sub == client.id
    assert (await stub.Revoke(pb.RevokeRequest(token=token))).revoked == 1
    resp = await stub.Verify(pb.VerifyRequest(token=token, audience="billing"))
    assert resp.reason == R.INACTIVE_REASON_REVOKED


@pytest.mark.parametrize(
    ("generate", "alg"),
    [({"kty": "EC", "crv": "P-256"}, "ECDH-ES+A256KW"), ({"kty": "RSA", "size": 2048}, "RSA-OAEP-256")],
)
async def test_a_registered_audience_decrypts_locally_with_an_independent_library(
    encrypting, store, clock, generate, alg
):
    app, stub = encrypting
    audience = f"svc-{alg.lower()}"
    client = await add_client(store, clock, audiences=(audience,))
    private = jwk.JWK.generate(**generate)
    kid = await register(app, audience, private, alg)
    token = await issue(stub, client, audience)
    assert header(token)["kid"] == kid and header(token)["alg"] == alg
    # joserfc (not jwcrypto, which authsvc uses) opens it with the service's key...
    rfc_key = rfc_jwk.import_key(private.export_private(as_dict=True))
    inner = rfc_jwe.decrypt_compact(token, rfc_key, algorithms=[alg, "A256GCM"]).plaintext.decode()
    # ...and PyJWT verifies the inner JWS with nothing but the published JWKS.
    jwks = json.loads((await stub.GetJWKS(pb.GetJWKSRequest())).jwks_json)
    signing = pyjwt.PyJWKSet.from_dict(jwks)[header(inner)["kid"]]
    claims = pyjwt.decode(inner, signing.key, algorithms=["EdDSA"], audience=audience, issuer="authsvc-test")
    assert claims["sub"] == client.id
    # The service can also use the shared rules with its key.
    local = verify_access_token(
        token, keys=KeySet.from_jwks(jwks), issuer="authsvc-test",
        requirements=Requirements(audience=audience), now=app.clock.now(), decryption_keys={kid: private},
    )  # fmt: skip
    assert local.sub == client.id
    # authsvc itself cannot read what it encrypted to someone else.
    resp = await stub.Verify(pb.VerifyRequest(token=token, audience=audience))
    assert resp.reason == R.INACTIVE_REASON_MALFORMED


@pytest.mark.parametrize(
    ("jwk_json", "why"),
    [
        ({**jwk.JWK.generate(kty="RSA", size=2048).export_public(as_dict=True), "alg": "RSA1_5"}, "alg"),
        ({**jwk.JWK.generate(kty="RSA", size=2048).export_public(as_dict=True), "alg": "RSA-OAEP"}, "alg"),
        ({**jwk.JWK.generate(kty="oct", size=256).export(as_dict=True), "alg": "A256KW"}, "private"),
        ({**jwk.JWK.generate(kty="oct", size=256).export(as_dict=True), "alg": "dir"}, "private"),
        ({**jwk.JWK.generate(kty="EC", crv="P-256").export(as_dict=True), "alg": "ECDH-ES+A256KW"}, "private"),
        ({**jwk.JWK.generate(kty="RSA", size=1024).export_public(as_dict=True), "alg": "RSA-OAEP-256"}, "2048"),
        ({**jwk.JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True), "alg": "ECDH-ES"}, "alg"),
        ({**jwk.JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)}, "alg"),
    ],
)
def test_weak_or_private_keys_are_refused_at_registration(jwk_json, why):
    with pytest.raises(BadEncryptionKey, match=why):
        parse_audience_key("svc", json.dumps(jwk_json))


@pytest.mark.parametrize(
    ("alg", "enc"),
    [("RSA1_5", "A256GCM"), ("RSA-OAEP", "A256GCM"), ("RSA-OAEP-256", "A128CBC-HS256"), ("RSA-OAEP-256", "A128GCM")],
)
async def test_weak_jwe_is_refused_on_input(encrypting, store, clock, alg, enc):
    """An attacker wraps a real inner token with a weak scheme to our key id."""
    app, stub = encrypting
    client = await add_client(store, clock, audiences=("billing",))
    signed = (await stub.Issue(
        pb.IssueRequest(client=pb.ClientCredential(client_id=client.id, client_secret=client.secret))
    )).tokens.access_token  # fmt: skip
    own_kid = next(iter(app.deps.live.encryptor.decryption_keys))
    attacker = jwk.JWK.generate(kty="RSA", size=2048)
    envelope = jwe.JWE(
        signed.encode(), protected={"alg": alg, "enc": enc, "cty": "JWT", "kid": own_kid}, algs=[alg, enc]
    )
    envelope.add_recipient(attacker)
    resp = await stub.Verify(pb.VerifyRequest(token=envelope.serialize(compact=True), audience="billing"))
    assert resp.reason == R.INACTIVE_REASON_MALFORMED


async def test_dir_and_zip_are_refused_on_input(encrypting, store, clock):
    app, stub = encrypting
    own_kid = next(iter(app.deps.live.encryptor.decryption_keys))
    for protected in (
        {"alg": "dir", "enc": "A256GCM", "cty": "JWT", "kid": own_kid},
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT", "kid": own_kid, "zip": "DEF"},
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": own_kid},
    ):
        head = base64.urlsafe_b64encode(json.dumps(protected).encode()).rstrip(b"=").decode()
        token = f"{head}.AAAA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"
        resp = await stub.Verify(pb.VerifyRequest(token=token, audience="billing"))
        assert resp.reason == R.INACTIVE_REASON_MALFORMED


def bare_token(app: App, audience: str) -> str:
    """Signed by authsvc's own key, not encrypted: what a service that asked
    for encrypted tokens only must refuse."""
    assert app.deps is not None
    grant = Grant(subject="svc", audiences=(audience,), scopes=(), client_id="svc", auth_time=app.clock.now(),
                  amr=(), acr="")  # fmt: skip
    token, _, _ = mint_access_token(
        grant, key=app.deps.live.keyring.signer, issuer="authsvc-test", now=app.clock.now(), ttl=300
    )
    return token


async def test_an_audience_can_require_encrypted_tokens(app, stub, store, clock):
    """`authsvc audience set-key AUD --jwk F --require-encrypted`: its tokens are
    encrypted though AUTHSVC_ENCRYPT_TOKENS is off, and a bare signed token for
    it is refused by Verify and, asked to, by a local verifier (issue 12)."""
    assert not app.settings.policy.encrypt_tokens
    private = jwk.JWK.generate(kty="EC", crv="P-256")
    public = {**private.export_public(as_dict=True), "alg": "ECDH-ES+A256KW", "use": "enc"}
    key = parse_audience_key("vault", json.dumps(public), require_encrypted=True)
    await store.set_audience_key(key, clock.now())
    await app.maintain_keys()
    client = await add_client(store, clock, audiences=("vault",))
    token = await issue(stub, client, "vault")
    assert token.count(".") == 4 and header(token)["kid"] == key.kid
    bare = bare_token(app, "vault")
    resp = await stub.Verify(pb.VerifyRequest(token=bare, audience="vault"))
    assert (resp.active, resp.reason) == (False, R.INACTIVE_REASON_NOT_ENCRYPTED)
    jwks = KeySet.from_jwks((await stub.GetJWKS(pb.GetJWKSRequest())).jwks_json)
    wanted = Requirements(audience="vault", require_encrypted=True)
    local = verify_access_token(token, keys=jwks, issuer="authsvc-test", requirements=wanted, now=clock.now(),
                                decryption_keys={key.kid: private})  # fmt: skip
    assert local.encrypted and local.sub == client.id
    with pytest.raises(TokenRejected) as err:
        verify_access_token(bare, keys=jwks, issuer="authsvc-test", requirements=wanted, now=clock.now())
    assert err.value.reason is Reason.NOT_ENCRYPTED
    # Other audiences are as they were: bare tokens, accepted.
    assert (await stub.Verify(pb.VerifyRequest(token=bare_token(app, "orders"), audience="orders"))).active


async def test_a_deployment_can_require_encrypted_tokens(settings, database_url, store, clock):
    policy = dataclasses.replace(settings.policy, encrypt_tokens=True, require_encrypted=True)
    async with (
        App(dataclasses.replace(settings, policy=policy), database_url, clock=clock) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch,
    ):
        stub = pb_grpc.AuthServiceStub(ch)
        audience = unique("opaque-only")  # no registered key: tokens are encrypted to authsvc's own
        client = await add_client(store, clock, audiences=(audience,))
        opaque = await issue(stub, client, audience)
        assert (await stub.Verify(pb.VerifyRequest(token=opaque, audience=audience))).active
        resp = await stub.Verify(pb.VerifyRequest(token=bare_token(app, audience), audience=audience))
        assert resp.reason == R.INACTIVE_REASON_NOT_ENCRYPTED


def test_requiring_encryption_without_encrypting_is_a_configuration_error():
    with pytest.raises(ConfigError, match="AUTHSVC_REQUIRE_ENCRYPTED"):
        Settings.from_env({"AUTHSVC_REQUIRE_ENCRYPTED": "true"})
