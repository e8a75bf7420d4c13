"""An in-process authsvc with its HTTP side port over TLS (and one over mTLS),
and the certificates they use."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authsvc.config import TlsFiles
from authsvc.server import App
from authsvc_client import grpc as pb_grpc

from ..support import FakeClock
from ..tlsutil import Issued, TestCA

ISSUER = "https://localhost"  # RFC 8414 wants an https URL for the issuer
SPIFFE = "spiffe://oauth.test.example/ns/prod/sa/"  # SANs are unique per client: not the TLS tests' ones


@dataclasses.dataclass
class Pki:
    ca: TestCA
    server: Issued
    billing: Issued
    mallory: Issued
    directory: Path

    def client_context(self, client: Issued | None = None) -> ssl.SSLContext:
        """What an HTTPS client trusts (our CA), with a client certificate."""
        context = ssl.create_default_context(cadata=self.ca.pem.decode())
        if client is not None:
            name = "c" + client.thumbprint[:8]
            cert, key = self.ca.write(self.directory, client, name)
            context.load_cert_chain(cert, key)
        return context


@pytest.fixture(scope="package")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = TestCA()
    return Pki(
        ca=ca,
        server=ca.issue("authsvc", server=True),
        billing=ca.issue("billing", uri=SPIFFE + "billing"),
        mallory=ca.issue("mallory", uri=SPIFFE + "mallory"),
        directory=tmp_path_factory.mktemp("pki"),
    )


def _settings(settings, pki: Pki, *, mutual: bool, **extra):
    cert, key = pki.ca.write(pki.directory, pki.server, "server")
    ca = pki.directory / "ca.crt"
    ca.write_bytes(pki.ca.pem)
    tls = TlsFiles(cert=cert, key=key, client_ca=ca if mutual else None)
    policy = dataclasses.replace(settings.policy, issuer=ISSUER)
    return dataclasses.replace(settings, tls=tls, http_listen="127.0.0.1:0", policy=policy, **extra)


@pytest.fixture(scope="package")
def oauth_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="package")
async def https(settings, database_url, pki, oauth_clock) -> AsyncIterator[App]:
    """TLS, no client CA; /metrics on a port of its own."""
    tuned = _settings(settings, pki, mutual=False, metrics_listen="127.0.0.1:0")
    async with App(tuned, database_url, clock=oauth_clock) as app:
        yield app


@pytest.fixture(scope="package")
async def mtls(settings, database_url, pki, oauth_clock) -> AsyncIterator[App]:
    """A client CA: certificates are asked for (and required on gRPC)."""
    async with App(_settings(settings, pki, mutual=True), database_url, clock=oauth_clock) as app:
        yield app


def base_url(app: App) -> str:
    return f"https://localhost:{app.http_port}"


@pytest.fixture(scope="package")
async def grpc_stub(https: App, pki: Pki) -> AsyncIterator[pb_grpc.AuthServiceAsyncStub]:
    """The gRPC twin of the HTTPS door, for logins (the door has no password grant)."""
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.pem)
    async with grpc.aio.secure_channel(f"localhost:{https.port}", creds) as channel:
        yield pb_grpc.AuthServiceStub(channel)
