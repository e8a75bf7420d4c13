"""A real Envoy in front of a small upstream, asking a real `authsvc serve`
about every request (ext_authz over gRPC, with mTLS both ways), on the
configuration the README shows (examples/envoy/envoy.yaml)."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import ssl
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authsvc.config import parse_kek
from authsvc.domain.identity import credentials
from authsvc.domain.tokens.mint import Grant, mint_access_token
from authsvc.domain.tokens.signing_keys import SigningKey, open_key
from authsvc.store.postgres import PostgresStore
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import create_database, drop_database
from ..tlsutil import Issued, TestCA
from . import procs

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "envoy" / "envoy.yaml"
SPIFFE = "spiffe://test.example/ns/prod/sa/"
HEADERS = ("x-authsvc-subject", "x-authsvc-scope", "x-authsvc-client-id", "x-authsvc-session-id")


class Upstream:
    """The protected service: answers 200 and records what reached it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


@dataclasses.dataclass
class Stack:
    pki: dict[str, Issued]
    ca_pem: bytes
    tls_dir: Path
    edge: Any  # the authsvc process Envoy asks (mTLS)
    edge_address: str
    plain_address: str  # a second replica on the same database, plaintext on loopback
    client_id: str
    client_secret: str
    mtls_client_id: str
    signing_key: SigningKey
    upstream: Upstream
    port: int  # Envoy's listener
    admin: str  # Envoy's admin address
    url: str  # the database both replicas use
    last_www_authenticate: str | None = None

    def get(self, path: str, token: str | None = None, cert: str | None = None, **headers: str) -> int:
        """GET through Envoy over TLS (with ``cert``'s certificate if given): the status."""
        context = ssl.create_default_context(cafile=str(self.tls_dir / "clients-ca.crt"))
        if cert is not None:
            context.load_cert_chain(self.tls_dir / f"{cert}.crt", self.tls_dir / f"{cert}.key")
        connection = http.client.HTTPSConnection("localhost", self.port, context=context, timeout=30)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        try:
            connection.request("GET", path, headers=headers)
            answer = connection.getresponse()
            answer.read()
            self.last_www_authenticate = answer.getheader("www-authenticate")
            return answer.status
        finally:
            connection.close()

    def channel(self, address: str, cert: str | None = None) -> grpc.Channel:
        if cert is None:
            return grpc.insecure_channel(address)
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=self.pki[cert].key_pem, certificate_chain=self.pki[cert].cert_pem
        )
        # authsvc's certificate names authsvc.internal; the test reaches it on loopback.
        return grpc.secure_channel(address, creds, options=(("grpc.ssl_target_name_override", "authsvc.internal"),))

    def issue(self, audience: str = "orders", cert: str | None = None) -> str:
        """A client-credentials token; over mTLS with ``cert`` it is bound to it."""
        address = self.plain_address if cert is None else self.edge_address
        credential = (
            pb.ClientCredential(client_id=self.client_id, client_secret=self.client_secret)
            if cert is None
            else pb.ClientCredential(client_id=self.mtls_client_id)
        )
        with self.channel(address, cert) as ch:
            answer = pb_grpc.AuthServiceStub(ch).Issue(pb.IssueRequest(client=credential, audience=[audience]))
        return str(answer.tokens.access_token)

    def mint(
        self, *, now: float, key: SigningKey | None = None, auth_time: float | None = None,
        scopes: tuple[str, ...] = ("orders.read",),
    ) -> str:
        """A token as authsvc's own signer makes it, at another moment (or
        with another key, or for a login made long before)."""
        grant = Grant(
            subject=self.client_id, audiences=("orders",), scopes=scopes, client_id=self.client_id,
            auth_time=now if auth_time is None else auth_time, amr=(), acr="",
        )  # fmt: skip
        return mint_access_token(grant, key=key or self.signing_key, issuer="authsvc", now=now, ttl=300)[0]


def envoy_config(tls_dir: Path, upstream_port: int, authsvc_port: int) -> dict[str, Any]:
    """examples/envoy/envoy.yaml with this test's ports and files: the rest,
    every filter and route setting, exactly as the README shows it."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())

    def files(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: files(v) for k, v in node.items()}
        if isinstance(node, list):
            return [files(v) for v in node]
        if isinstance(node, str) and node.startswith("/etc/envoy/tls/"):
            return str(tls_dir / node.removeprefix("/etc/envoy/tls/"))
        return node

    config = files(config)
    resources = config["static_resources"]
    (listener,) = resources["listeners"]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    clusters = {c["name"]: c for c in resources["clusters"]}
    for name, port in (("orders", upstream_port), ("authsvc", authsvc_port)):
        (endpoints,) = clusters[name]["load_assignment"]["endpoints"]
        (lb_endpoint,) = endpoints["lb_endpoints"]
        lb_endpoint["endpoint"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": port}
    clusters["authsvc"]["type"] = "STATIC"  # an IP address now, not a name to resolve
    config["admin"]["address"]["socket_address"]["port_value"] = 0
    return config


def listener_port(admin: str) -> int:
    with urllib.request.urlopen(f"http://{admin}/listeners?format=json", timeout=5) as answer:
        statuses = json.load(answer)["listener_statuses"]
    (status,) = statuses
    return int(status["local_address"]["socket_address"]["port_value"])


@pytest.fixture(scope="module")
async def envoy_db(admin_url) -> AsyncIterator[tuple[str, str, str, str]]:
    """A database with the schema, a service client with a secret and one that
    logs in with its certificate: (url, client id, secret, mTLS client id)."""
    url = await create_database(admin_url, "authsvc_envoy")
    store = await PostgresStore.connect(url, min_size=1, max_size=2)
    try:
        await store.migrate()
        now = time.time()
        client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
        await store.create_client(client_id, "billing", credentials.digest(secret), ["orders.read"],
                                  ["orders", "billing"], now)  # fmt: skip
        mtls_id = credentials.new_client_id()
        await store.create_client(mtls_id, "billing-mtls", b"", ["orders.read"], ["orders"], now,
                                  tls_san_uri=SPIFFE + "billing")  # fmt: skip
    finally:
        await store.close()
    yield url, client_id, secret, mtls_id
    await drop_database(admin_url, url)


async def active_key(url: str) -> SigningKey:
    store = await PostgresStore.connect(url, min_size=1, max_size=1)
    try:
        stored = [k for k in await store.signing_keys() if k.state == "active"]
    finally:
        await store.close()
    return open_key(stored[0], parse_kek(procs.TEST_KEK))


@pytest.fixture(scope="module")
async def stack(envoy_db, tmp_path_factory) -> AsyncIterator[Stack]:
    url, client_id, secret, mtls_id = envoy_db
    tmp = tmp_path_factory.mktemp("envoy")
    tls_dir = tmp / "tls"
    tls_dir.mkdir()
    ca = TestCA()
    pki = {
        "orders": ca.issue("orders", server=True),
        "authsvc": ca.issue("authsvc", server=True, dns=("authsvc.internal",)),
        "envoy-client": ca.issue("envoy"),
        "billing": ca.issue("billing", uri=SPIFFE + "billing"),
        "mallory": ca.issue("mallory", uri=SPIFFE + "mallory"),
    }
    for stem, issued in pki.items():
        ca.write(tls_dir, issued, stem)
    for name in ("clients-ca.crt", "authsvc-ca.crt", "ca.crt"):  # one test CA stands for all three
        (tls_dir / name).write_bytes(ca.pem)

    edge_env = procs.server_env(
        url, tmp / "edge", AUTHSVC_TLS_CERT=str(tls_dir / "authsvc.crt"), AUTHSVC_TLS_KEY=str(tls_dir / "authsvc.key"),
        AUTHSVC_TLS_CLIENT_CA=str(tls_dir / "ca.crt"),
    )  # fmt: skip
    upstream = Upstream()
    upstream.thread.start()
    with (
        procs.serving(edge_env, tmp / "edge.log") as (edge, edge_address),
        procs.serving(procs.server_env(url, tmp / "plain"), tmp / "plain.log") as (_, plain_address),
    ):
        config = tmp / "envoy.json"
        config.write_text(json.dumps(envoy_config(tls_dir, upstream.port, int(edge_address.rpartition(":")[2]))))
        with procs.envoy(config, tmp / "envoy.log") as (_, admin):
            yield Stack(
                pki=pki, ca_pem=ca.pem, tls_dir=tls_dir, edge=edge, edge_address=edge_address,
                plain_address=plain_address, client_id=client_id, client_secret=secret, mtls_client_id=mtls_id,
                signing_key=await active_key(url), upstream=upstream, port=listener_port(admin), admin=admin, url=url,
            )  # fmt: skip
    upstream.server.shutdown()


def test_a_valid_token_reaches_the_upstream_with_who_it_is_for(stack):
    token = stack.issue()
    path = f"/orders/{uuid.uuid4()}"
    # A client's own x-authsvc-subject is overwritten, never passed along.
    assert stack.get(path, token, **{"x-authsvc-subject": "admin", "x-authsvc-session-id": "forged"}) == 200
    (headers,) = [h for seen, h in stack.upstream.seen if seen == path]
    assert headers["x-authsvc-subject"] == headers["x-authsvc-client-id"] == stack.client_id
    assert headers["x-authsvc-scope"] == "orders.read"
    assert "x-authsvc-session-id" not in headers  # a client token has no session; the forged one is gone
    assert headers["authorization"] == f"Bearer {token}"


def test_underscore_spellings_of_the_injected_headers_are_refused(stack):
    """x_authsvc_subject is not x-authsvc-subject to Envoy, so the door's
    overwrite would not touch it, and an upstream that reads underscores as
    dashes would take it for the real one: the listener refuses it (review M3)."""
    path = f"/orders/{uuid.uuid4()}"
    assert stack.get(path, stack.issue(), **{"x_authsvc_subject": "admin"}) == 400
    assert path not in stack.upstream.paths()


def test_envoy_health_checks_authsvc_over_mtls(stack):
    """The snippet's gRPC health check reaches authsvc (as Check does): SERVING."""
    with urllib.request.urlopen(f"http://{stack.admin}/clusters", timeout=5) as answer:
        clusters = answer.read().decode()
    assert f"authsvc::{stack.edge_address}::health_flags::healthy" in clusters


def test_refused_tokens_never_reach_the_upstream(stack):
    valid = stack.issue()
    forged = stack.mint(now=time.time(), key=SigningKey(stack.signing_key.kid, "EdDSA", Ed25519PrivateKey.generate()))
    invalid = 'Bearer realm="orders", error="invalid_token"'
    cases = {
        "missing": (None, 401, 'Bearer realm="orders"'),
        "expired": (stack.mint(now=time.time() - 3600), 401, invalid),
        "forged": (forged, 401, invalid),
        "wrong audience": (stack.issue(audience="billing"), 401, invalid),
        "garbage": ("not-a-token", 401, invalid),
    }
    for name, (token, status, www) in cases.items():
        path = f"/orders/{name.replace(' ', '-')}-{uuid.uuid4()}"
        assert (stack.get(path, token), stack.last_www_authenticate) == (status, www), name
        assert path not in stack.upstream.paths(), name
    path = f"/admin/{uuid.uuid4()}"  # this route needs orders.admin
    assert stack.get(path, valid) == 403
    assert stack.last_www_authenticate == 'Bearer realm="orders", error="insufficient_scope", scope="orders.admin"'
    assert path not in stack.upstream.paths()


def test_a_route_with_max_auth_age_wants_a_recent_login(stack):
    now = time.time()
    admin = ("orders.read", "orders.admin")
    assert stack.get(f"/admin/{uuid.uuid4()}", stack.mint(now=now, scopes=admin)) == 200
    path = f"/admin/{uuid.uuid4()}"
    assert stack.get(path, stack.mint(now=now, auth_time=now - 1000, scopes=admin)) == 401  # the route says 900 s
    assert stack.last_www_authenticate == 'Bearer realm="orders", error="insufficient_user_authentication", max_age=900'
    assert path not in stack.upstream.paths()


def test_a_revoked_token_is_refused(stack):
    token = stack.issue()
    assert stack.get(f"/orders/{uuid.uuid4()}", token) == 200
    with stack.channel(stack.edge_address, "billing") as ch:
        assert pb_grpc.AuthServiceStub(ch).Revoke(pb.RevokeRequest(token=token)).revoked == 1
    path = f"/orders/{uuid.uuid4()}"
    assert stack.get(path, token) == 401
    assert path not in stack.upstream.paths()


def test_a_certificate_bound_token_needs_its_certificate(stack):
    token = stack.issue(cert="billing")
    assert stack.get(f"/orders/{uuid.uuid4()}", token, cert="billing") == 200
    for thief in ("mallory", None):  # another certificate, or none
        path = f"/orders/{uuid.uuid4()}"
        assert stack.get(path, token, cert=thief) == 401, thief
        assert stack.last_www_authenticate == 'Bearer realm="orders", error="invalid_token"'
        assert path not in stack.upstream.paths()


async def test_a_replica_that_cannot_read_the_revocation_log_is_refused(stack, admin_url):
    """The database goes away: past AUTHSVC_VERIFY_MAX_STALENESS (10 s by
    default) authsvc cannot vouch for revocations, answers UNAVAILABLE, and
    Envoy refuses (503); once it is back, requests pass again."""
    token = stack.issue()
    assert stack.get(f"/orders/{uuid.uuid4()}", token) == 200
    name = urlsplit(stack.url).path.lstrip("/")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        path = await until_status(stack, token, 503)
        assert path not in stack.upstream.paths()
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await until_status(stack, token, 200)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def until_status(stack: Stack, token: str, status: int, seconds: float = 30.0) -> str:
    """GET (a new path each time) until Envoy answers ``status``: that path.
    authsvc's background loop runs on real time, so this polls, bounded."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        path = f"/orders/{uuid.uuid4()}"
        if await asyncio.to_thread(stack.get, path, token) == status:
            return path
        await asyncio.sleep(0.1)
    raise AssertionError(f"Envoy never answered {status} in {seconds}s")


def test_with_authsvc_stopped_envoy_refuses(stack):
    """Last in the module: it stops the replica Envoy asks."""
    token = stack.issue()
    assert stack.get(f"/orders/{uuid.uuid4()}", token) == 200
    procs.stop(stack.edge)
    path = f"/orders/{uuid.uuid4()}"
    assert stack.get(path, token) == 503
    assert path not in stack.upstream.paths()


def test_the_readme_shows_this_very_configuration():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```yaml\n{CONFIG.read_text(encoding='utf-8')}```\n" in readme
