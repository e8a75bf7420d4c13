"""Issue 5 (server side): TLS, mTLS, certificate-authenticated clients and
certificate-bound tokens (RFC 8705), with certificates made in the test."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authsvc.config import TlsFiles
from authsvc.domain.identity import credentials
from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..conftest import unique
from ..integration.helpers import add_user, bearer, login, self_login
from ..support import FakeClock
from ..tlsutil import Issued, TestCA

R = pb.InactiveReason
SPIFFE = "spiffe://test.example/ns/prod/sa/"


@dataclasses.dataclass
class Pki:
    ca: TestCA
    server: Issued
    billing: Issued
    mallory: Issued
    alice: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    ca = TestCA()
    return Pki(
        ca=ca,
        server=ca.issue("authsvc", server=True),
        billing=ca.issue("billing", uri=SPIFFE + "billing"),
        mallory=ca.issue("mallory", uri=SPIFFE + "mallory"),
        alice=ca.issue("alice-laptop"),
    )


def tls_app(settings, database_url, pki: Pki, directory: Path, mutual: bool) -> App:
    cert, key = pki.ca.write(directory, pki.server, "server")
    ca = directory / "ca.crt"
    ca.write_bytes(pki.ca.pem)
    tls = TlsFiles(cert=cert, key=key, client_ca=ca if mutual else None)
    return App(dataclasses.replace(settings, tls=tls), database_url, clock=FakeClock())


@pytest.fixture(scope="module")
async def tls_only(settings, database_url, pki, tmp_path_factory) -> AsyncIterator[App]:
    async with tls_app(settings, database_url, pki, tmp_path_factory.mktemp("tls"), mutual=False) as app:
        yield app


@pytest.fixture(scope="module")
async def mtls(settings, database_url, pki, tmp_path_factory) -> AsyncIterator[App]:
    async with tls_app(settings, database_url, pki, tmp_path_factory.mktemp("mtls"), mutual=True) as app:
        yield app


def channel(app: App, pki: Pki, client: Issued | None) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    return grpc.aio.secure_channel(f"localhost:{app.port}", creds)


def claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


async def add_mtls_client(store, clock, uri: str) -> str:
    client_id = credentials.new_client_id()
    await store.create_client(client_id, unique("mtls"), b"", ["orders.read"], ["orders"], clock.now(), tls_san_uri=uri)
    return client_id


async def test_tls_without_a_client_certificate_gives_unbound_tokens(tls_only, pki, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    async with channel(tls_only, pki, None) as ch:
        pair = await login(pb_grpc.AuthServiceStub(ch), user)
    assert "cnf" not in claims(pair.access_token)


async def test_client_authenticates_with_its_certificate_and_gets_a_bound_token(mtls, pki, store, clock):
    client_id = await add_mtls_client(store, clock, SPIFFE + "billing")
    async with channel(mtls, pki, pki.billing) as ch:
        stub = pb_grpc.AuthServiceStub(ch)
        pair = (await stub.Issue(pb.IssueRequest(client=pb.ClientCredential(client_id=client_id)))).tokens
        token = pair.access_token
        assert claims(token)["cnf"] == {"x5t#S256": pki.billing.thumbprint}
        assert claims(token)["amr"] == ["mtls"]
        ok = await stub.Verify(pb.VerifyRequest(token=token, audience="orders", cert_thumbprint=pki.billing.thumbprint))
        assert ok.active and ok.claims.cnf_x5t_s256 == pki.billing.thumbprint
        # A thief with the token but not the key: useless.
        for presented in ("", pki.mallory.thumbprint):
            stolen = await stub.Verify(pb.VerifyRequest(token=token, audience="orders", cert_thumbprint=presented))
            assert stolen.reason == R.INACTIVE_REASON_CERT_MISMATCH


async def test_a_certificate_cannot_stand_in_for_another_client(mtls, pki, store, clock):
    client_id = await add_mtls_client(store, clock, SPIFFE + "billing-2")
    for presenter, secret in ((pki.mallory, ""), (pki.billing, ""), (pki.mallory, "guess")):
        async with channel(mtls, pki, presenter) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.AuthServiceStub(ch).Issue(
                    pb.IssueRequest(client=pb.ClientCredential(client_id=client_id, client_secret=secret))
                )
            assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")


async def test_a_bound_session_refreshes_only_with_its_certificate(mtls, tls_only, pki, store, passwords, clock):
    user = await add_user(store, passwords, clock)
    async with channel(mtls, pki, pki.alice) as ch:
        stub = pb_grpc.AuthServiceStub(ch)
        pair = await self_login(stub, user)
        assert claims(pair.access_token)["cnf"] == {"x5t#S256": pki.alice.thumbprint}
    mtls.clock.advance(3)
    tls_only.clock.advance(3)
    # The tokens were stolen; alice's private key was not. No certificate, or another one:
    for where, thief in ((tls_only, None), (mtls, pki.mallory)):
        async with channel(where, pki, thief) as ch:
            stub = pb_grpc.AuthServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListSessions(pb.ListSessionsRequest(), metadata=bearer(pair.access_token))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with channel(mtls, pki, pki.alice) as ch:  # the owner, with the key, is unaffected
        stub = pb_grpc.AuthServiceStub(ch)
        fresh = (await stub.Refresh(pb.RefreshRequest(refresh_token=pair.refresh_token))).tokens
        assert claims(fresh.access_token)["cnf"] == {"x5t#S256": pki.alice.thumbprint}
        sessions = await stub.ListSessions(pb.ListSessionsRequest(), metadata=bearer(fresh.access_token))
        assert [s.session_id for s in sessions.sessions] == [pair.session_id]


async def test_mtls_refuses_connections_without_a_trusted_certificate(mtls, pki):
    async with channel(mtls, pki, None) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.AuthServiceStub(ch).GetJWKS(pb.GetJWKSRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    async with channel(mtls, pki, pki.billing) as ch:
        assert (await pb_grpc.AuthServiceStub(ch).GetJWKS(pb.GetJWKSRequest(), timeout=5)).jwks_json
    stranger = TestCA("another CA").issue("stranger", uri=SPIFFE + "billing")
    async with channel(mtls, pki, stranger) as ch:
        with pytest.raises(grpc.aio.AioRpcError):
            await pb_grpc.AuthServiceStub(ch).GetJWKS(pb.GetJWKSRequest(), timeout=5)


async def test_an_exchange_over_mtls_binds_the_delegated_token_to_the_actor(
    mtls, tls_only, pki, store, passwords, clock
):
    """RFC 8693 with RFC 8705: the actor proves itself with its certificate, and
    what it gets is bound to that certificate; a subject token bound to someone
    else's certificate is exchanged by nobody else."""
    gateway = pki.ca.issue("gateway", uri=SPIFFE + "gateway")
    actor = credentials.new_client_id()
    await store.create_client(
        actor, unique("gw"), b"", ["read"], ["gateway"], clock.now(), tls_san_uri=SPIFFE + "gateway",
        exchange_audiences=["orders"],
    )  # fmt: skip
    user = await add_user(store, passwords, clock, scopes=("read",), audiences=("gateway",))
    async with channel(tls_only, pki, None) as ch:
        unbound = await login(pb_grpc.AuthServiceStub(ch), user, audience=["gateway"])
    async with channel(mtls, pki, pki.alice) as ch:
        bound = await login(pb_grpc.AuthServiceStub(ch), user, audience=["gateway"])  # bound to alice's laptop
    async with channel(mtls, pki, gateway) as ch:
        stub = pb_grpc.AuthServiceStub(ch)

        def exchange(token: str) -> pb.ExchangeTokenRequest:
            return pb.ExchangeTokenRequest(
                client=pb.ClientCredential(client_id=actor), subject_token=token, audience=["orders"]
            )

        got = await stub.ExchangeToken(exchange(unbound.access_token))
        assert claims(got.access_token)["cnf"] == {"x5t#S256": gateway.thumbprint}
        assert claims(got.access_token)["act"] == {"sub": actor}
        ok = await stub.Verify(pb.VerifyRequest(token=got.access_token, audience="orders",
                                                cert_thumbprint=gateway.thumbprint))  # fmt: skip
        assert ok.active and ok.claims.act.sub == actor
        stolen = await stub.Verify(pb.VerifyRequest(token=got.access_token, audience="orders"))
        assert stolen.reason == R.INACTIVE_REASON_CERT_MISMATCH
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ExchangeToken(exchange(bound.access_token))
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid subject_token")
