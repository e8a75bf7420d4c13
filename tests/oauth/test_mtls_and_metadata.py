"""tls_client_auth over real mTLS (RFC 8705), and the metadata document
(RFC 8414) checked member by member against what the server really does."""

from __future__ import annotations

import base64
import json
import ssl

import grpc
import httpx2
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oauth2.auth import encode_none
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from authsvc.domain.identity import credentials
from authsvc.server import App
from authsvc_client import grpc as pb_grpc

from ..conftest import unique
from ..integration.helpers import add_client, add_user, login
from ..tlsutil import TestCA
from .conftest import ISSUER, SPIFFE, Pki, base_url


def claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


async def add_mtls_client(app: App, clock, uri: str) -> str:
    assert app.deps is not None
    client_id = credentials.new_client_id()
    await app.deps.store.create_client(
        client_id, unique("mtls"), b"", ["orders.read"], ["orders"], clock.now(), tls_san_uri=uri
    )
    return client_id


def tls_client(pki: Pki, client_id: str, certificate) -> AsyncOAuth2Client:
    """RFC 8705 section 2: the client_id in the body, the proof in the TLS handshake."""
    client = AsyncOAuth2Client(
        client_id, token_endpoint_auth_method="tls_client_auth", verify=pki.client_context(certificate), timeout=10
    )
    client.register_client_auth_method(("tls_client_auth", encode_none))
    return client


async def test_tls_client_auth_gets_a_certificate_bound_token(mtls, pki, oauth_clock):
    client_id = await add_mtls_client(mtls, oauth_clock, SPIFFE + "billing")
    url = base_url(mtls) + "/oauth2/token"
    async with tls_client(pki, client_id, pki.billing) as client:
        token = await client.fetch_token(url, grant_type="client_credentials", audience="orders")
    got = claims(token["access_token"])
    assert got["cnf"] == {"x5t#S256": pki.billing.thumbprint}
    assert got["amr"] == ["mtls"] and got["sub"] == client_id

    # Another certificate of the same CA, or none at all: not this client.
    for certificate in (pki.mallory, None):
        async with tls_client(pki, client_id, certificate) as client:
            with pytest.raises(OAuthError) as err:
                await client.fetch_token(url, grant_type="client_credentials")
            assert err.value.error == "invalid_client"

    # The resource server (a secret client, no certificate) learns the binding
    # and compares it with its own caller's certificate (RFC 8705 section 3.2).
    resource = await add_client(mtls.deps.store, oauth_clock, scopes=(), audiences=("orders",))
    async with AsyncOAuth2Client(resource.id, resource.secret, verify=pki.client_context(), timeout=10) as rs:
        body = (await rs.introspect_token(base_url(mtls) + "/oauth2/introspect", token=token["access_token"])).json()
    assert body["active"] is True and body["cnf"] == {"x5t#S256": pki.billing.thumbprint}


async def test_a_certificate_from_another_ca_fails_the_handshake(mtls, pki, tmp_path):
    stranger = TestCA("not our CA").issue("intruder", uri=SPIFFE + "billing")
    cert, key = TestCA().write(tmp_path, stranger, "intruder")
    context = ssl.create_default_context(cadata=pki.ca.pem.decode())
    context.load_cert_chain(cert, key)
    async with httpx2.AsyncClient(verify=context, timeout=10) as raw:
        with pytest.raises(httpx2.HTTPError):
            await raw.post(base_url(mtls) + "/oauth2/token", data={"grant_type": "client_credentials"})
        # Without any certificate the public documents stay readable (asked for, not required).
    async with httpx2.AsyncClient(verify=pki.client_context(), timeout=10) as anonymous:
        assert (await anonymous.get(base_url(mtls) + "/.well-known/jwks.json")).status_code == 200


async def fetch_metadata(app: App, pki: Pki) -> dict[str, object]:
    async with httpx2.AsyncClient(verify=pki.client_context(), timeout=10) as raw:
        answer = await raw.get(base_url(app) + "/.well-known/oauth-authorization-server")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert answer.headers["access-control-allow-origin"] == "*"
    document: dict[str, object] = answer.json()
    return document


@pytest.mark.parametrize("mutual", [False, True])
async def test_metadata_meets_rfc_8414(https, mtls, pki, mutual):
    app = mtls if mutual else https
    document = await fetch_metadata(app, pki)
    metadata = AuthorizationServerMetadata(document)
    # Every member authlib knows, validated by authlib (https URLs, types, the
    # members RFC 8414 section 2 requires), except response_types_supported:
    # REQUIRED, but there is no authorization endpoint here, so no response
    # type works and the honest value is an empty array, which authlib reads as absent.
    for key in AuthorizationServerMetadata.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(metadata, f"validate_{key}")()
    assert document["response_types_supported"] == []
    assert "authorization_endpoint" not in document  # no grant here uses one
    # RFC 8414 section 3.3: the issuer is the one the tokens carry.
    assert document["issuer"] == ISSUER == app.settings.policy.issuer
    base = base_url(app).replace("localhost", "127.0.0.1")
    assert document["token_endpoint"] == base + "/oauth2/token"
    assert document["introspection_endpoint"] == base + "/oauth2/introspect"
    assert document["revocation_endpoint"] == base + "/oauth2/revoke"
    assert document["jwks_uri"] == base + "/.well-known/jwks.json"
    assert document["grant_types_supported"] == [
        "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange",
    ]  # fmt: skip
    secrets = ["client_secret_basic", "client_secret_post"]
    methods = secrets + (["tls_client_auth"] if mutual else [])
    assert document["token_endpoint_auth_methods_supported"] == [*methods, "none"]
    assert document["introspection_endpoint_auth_methods_supported"] == methods
    assert document["revocation_endpoint_auth_methods_supported"] == methods
    assert document["tls_client_certificate_bound_access_tokens"] is mutual
    # And each endpoint named is really there.
    async with httpx2.AsyncClient(verify=pki.client_context(), timeout=10) as raw:
        for key in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
            answer = await raw.post(str(document[key]).replace("127.0.0.1", "localhost"), data={})
            assert answer.status_code in (400, 401) and "error" in answer.json(), key
        assert (await raw.get(str(document["jwks_uri"]).replace("127.0.0.1", "localhost"))).json()["keys"]


async def test_a_certificate_bound_session_refreshes_only_with_its_certificate(mtls, pki, oauth_clock):
    assert mtls.deps is not None
    user = await add_user(mtls.deps.store, mtls.deps.passwords, oauth_clock)
    creds = grpc.ssl_channel_credentials(pki.ca.pem, pki.billing.key_pem, pki.billing.cert_pem)
    async with grpc.aio.secure_channel(f"localhost:{mtls.port}", creds) as channel:
        pair = await login(pb_grpc.AuthServiceStub(channel), user, audience=["orders"])
    url = base_url(mtls) + "/oauth2/token"
    form = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token}
    for certificate in (None, pki.mallory):  # a thief's connection: refused, and not taken for reuse
        async with httpx2.AsyncClient(verify=pki.client_context(certificate), timeout=10) as raw:
            answer = await raw.post(url, data=form)
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    async with httpx2.AsyncClient(verify=pki.client_context(pki.billing), timeout=10) as holder:
        answer = await holder.post(url, data=form)
    assert answer.status_code == 200, answer.text
    assert claims(answer.json()["access_token"])["cnf"] == {"x5t#S256": pki.billing.thumbprint}
