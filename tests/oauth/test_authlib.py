"""OAuth 2.0 over HTTPS, driven by a client nobody here wrote: authlib's
httpx OAuth2 client (client credentials, refresh, introspection, revocation)."""

from __future__ import annotations

import base64
import json

import httpx2
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from ..integration.helpers import add_client, add_user, login
from .conftest import Pki, base_url


def claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def oauth_client(pki: Pki, client_id: str | None = None, secret: str | None = None, **kw) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(client_id, secret, verify=pki.client_context(), timeout=10, **kw)


@pytest.fixture
async def service(https, oauth_clock):
    assert https.deps is not None
    return await add_client(https.deps.store, oauth_clock)  # orders.read on orders, billing


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_client_credentials(https, pki, service, method):
    url = base_url(https) + "/oauth2/token"
    async with oauth_client(pki, service.id, service.secret, token_endpoint_auth_method=method) as client:
        token = await client.fetch_token(url, grant_type="client_credentials", audience="billing", scope="orders.read")
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "orders.read"
        assert 0 < token["expires_in"] <= 300
        assert "refresh_token" not in token  # client credentials: RFC 6749 section 4.4.3
        got = claims(token["access_token"])
        assert got["sub"] == got["client_id"] == service.id
        assert got["aud"] == "billing"  # one audience: a string (RFC 7519 section 4.1.3)

        # RFC 8707's resource stands for the audience.
        token = await client.fetch_token(url, grant_type="client_credentials", resource="orders")
        assert claims(token["access_token"])["aud"] == "orders"

        # And the answers must not be stored anywhere on the way.
        answer = await client.post(url, data={"grant_type": "client_credentials"})
        assert answer.headers["cache-control"] == "no-store" and answer.headers["pragma"] == "no-cache"


async def test_a_wrong_secret_is_invalid_client(https, pki, service):
    url = base_url(https) + "/oauth2/token"
    async with oauth_client(pki, service.id, "not-" + service.secret) as client:
        with pytest.raises(OAuthError) as err:
            await client.fetch_token(url, grant_type="client_credentials")
    assert err.value.error == "invalid_client"
    async with httpx2.AsyncClient(verify=pki.client_context()) as raw:
        answer = await raw.post(url, data={"grant_type": "client_credentials"}, auth=(service.id, "nope"))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert answer.json() == {"error": "invalid_client", "error_description": "invalid credentials"}


async def test_scope_and_audience_beyond_the_client_are_refused(https, pki, service):
    url = base_url(https) + "/oauth2/token"
    async with oauth_client(pki, service.id, service.secret) as client:
        with pytest.raises(OAuthError) as err:
            await client.fetch_token(url, grant_type="client_credentials", scope="orders.write")
        assert err.value.error == "invalid_scope"
        with pytest.raises(OAuthError) as err:
            await client.fetch_token(url, grant_type="client_credentials", audience="payroll")
        assert err.value.error == "invalid_target"


async def test_refresh_rotates_and_reuse_ends_the_session(https, pki, grpc_stub, oauth_clock):
    assert https.deps is not None
    user = await add_user(https.deps.store, https.deps.passwords, oauth_clock)
    pair = await login(grpc_stub, user, audience=["orders"])
    url = base_url(https) + "/oauth2/token"
    # A public client: the refresh token alone (token_endpoint_auth_method "none").
    async with oauth_client(pki, token_endpoint_auth_method="none") as client:
        first = await client.refresh_token(url, refresh_token=pair.refresh_token)
        assert first["refresh_token"] != pair.refresh_token
        assert claims(first["access_token"])["sid"] == pair.session_id
        assert first["scope"] == "read write"

        # Too soon after the last refresh: 429 with Retry-After, as Refresh's RESOURCE_EXHAUSTED.
        async with httpx2.AsyncClient(verify=pki.client_context()) as raw:
            answer = await raw.post(url, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
        assert answer.status_code == 429 and answer.headers["retry-after"] == "2"
        assert answer.json()["error"] == "slow_down"

        oauth_clock.advance(3)
        second = await client.refresh_token(url, refresh_token=first["refresh_token"], scope="read")
        assert second["scope"] == "read"

        # The spent token again: reuse, and the whole session ends.
        oauth_clock.advance(3)
        with pytest.raises(OAuthError) as err:
            await client.refresh_token(url, refresh_token=first["refresh_token"])
        assert err.value.error == "invalid_grant"
        with pytest.raises(OAuthError) as err:
            await client.refresh_token(url, refresh_token=second["refresh_token"])
        assert err.value.error == "invalid_grant"


async def test_a_confidential_client_may_refresh_with_its_credentials(https, pki, grpc_stub, service, oauth_clock):
    assert https.deps is not None
    user = await add_user(https.deps.store, https.deps.passwords, oauth_clock)
    pair = await login(grpc_stub, user, audience=["orders"])
    url = base_url(https) + "/oauth2/token"
    async with oauth_client(pki, service.id, service.secret) as client:
        token = await client.refresh_token(url, refresh_token=pair.refresh_token)
        assert token["refresh_token"]
    async with oauth_client(pki, service.id, "wrong") as client:
        with pytest.raises(OAuthError) as err:
            await client.refresh_token(url, refresh_token=token["refresh_token"])
        assert err.value.error == "invalid_client"


async def test_introspection(https, pki, service, grpc_stub, oauth_clock):
    assert https.deps is not None
    token_url, url = base_url(https) + "/oauth2/token", base_url(https) + "/oauth2/introspect"
    # The resource server: a client registered for the audience "orders" only.
    resource = await add_client(https.deps.store, oauth_clock, scopes=(), audiences=("orders",))
    async with oauth_client(pki, service.id, service.secret) as client:
        for_orders = (await client.fetch_token(token_url, grant_type="client_credentials", audience="orders"))
        for_billing = (await client.fetch_token(token_url, grant_type="client_credentials", audience="billing"))
    async with oauth_client(pki, resource.id, resource.secret) as rs:
        answer = await rs.introspect_token(url, token=for_orders["access_token"])
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        body = answer.json()
        assert body["active"] is True
        assert body["sub"] == body["client_id"] == service.id
        assert body["aud"] == ["orders"] and body["scope"] == "orders.read"
        assert body["token_type"] == "Bearer" and body["exp"] > body["iat"]
        # Not meant for the caller's audiences: inactive, and nothing more said.
        assert (await rs.introspect_token(url, token=for_billing["access_token"])).json() == {"active": False}
        assert (await rs.introspect_token(url, token="garbage")).json() == {"active": False}
        # An audience the caller is not registered for is refused outright.
        refused = await rs.introspect_token(url, token=for_billing["access_token"], body="audience=billing")
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
        # A user's access token, and its refresh token (not an access token: inactive).
        user = await add_user(https.deps.store, https.deps.passwords, oauth_clock)
        pair = await login(grpc_stub, user, audience=["orders"])
        assert (await rs.introspect_token(url, token=pair.access_token)).json()["sub"] == user.id
        assert (await rs.introspect_token(url, token=pair.refresh_token)).json() == {"active": False}
    async with oauth_client(pki, resource.id, "wrong") as stranger:
        denied = await stranger.introspect_token(url, token=for_orders["access_token"])
        assert denied.status_code == 401 and denied.json()["error"] == "invalid_client"


async def test_revocation(https, pki, service, grpc_stub, oauth_clock):
    assert https.deps is not None
    base = base_url(https)
    resource = await add_client(https.deps.store, oauth_clock, scopes=(), audiences=("orders",))
    user = await add_user(https.deps.store, https.deps.passwords, oauth_clock)
    pair = await login(grpc_stub, user, audience=["orders"])
    async with oauth_client(pki, service.id, service.secret) as client:
        issued = await client.fetch_token(base + "/oauth2/token", grant_type="client_credentials", audience="orders")
        answer = await client.revoke_token(base + "/oauth2/revoke", token=issued["access_token"])
        assert answer.status_code == 200
        # RFC 7009 section 2.2: unknown and already revoked tokens get 200 too.
        for token in ("garbage", issued["access_token"], "abc.def"):
            assert (await client.revoke_token(base + "/oauth2/revoke", token=token)).status_code == 200
        # A refresh token stands for its session: revoking it ends the session.
        hint = "refresh_token"
        revoked = await client.revoke_token(base + "/oauth2/revoke", token=pair.refresh_token, token_type_hint=hint)
        assert revoked.status_code == 200
    async with oauth_client(pki, resource.id, resource.secret) as rs:
        url = base + "/oauth2/introspect"
        assert (await rs.introspect_token(url, token=issued["access_token"])).json() == {"active": False}
        assert (await rs.introspect_token(url, token=pair.access_token)).json() == {"active": False}
    async with oauth_client(pki, token_endpoint_auth_method="none") as public:
        with pytest.raises(OAuthError):
            await public.refresh_token(base + "/oauth2/token", refresh_token=pair.refresh_token)
        # Revocation needs client authentication (RFC 7009 section 2.1).
        anonymous = await public.revoke_token(base + "/oauth2/revoke", token="x")
        assert anonymous.status_code == 401


async def test_metrics_listen_apart_from_the_public_port(https, pki):
    assert https.metrics_port not in (0, https.http_port)
    async with httpx2.AsyncClient(verify=pki.client_context()) as raw:
        public = await raw.get(base_url(https) + "/metrics")
        apart = await raw.get(f"https://localhost:{https.metrics_port}/metrics")
        jwks_apart = await raw.get(f"https://localhost:{https.metrics_port}/.well-known/jwks.json")
        assert (await raw.get(f"https://localhost:{https.metrics_port}/readyz")).status_code == 200
    assert public.status_code == 404 and jwks_apart.status_code == 404
    assert apart.status_code == 200 and "authsvc_up 1" in apart.text
    assert apart.headers["cache-control"] == "no-store"
