"""The server interceptors on real servers (grpc.aio, and the classic thread
pool) on free ports, called for real: no token, a bad token, the wrong scope,
a good token, the claims the handler sees, certificate-bound tokens over mTLS."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health as health_sync
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc.config import TlsFiles
from authsvc.domain.identity import credentials
from authsvc.server import App
from authsvc_client import (
    AsyncAuthClient,
    AsyncAuthServerInterceptor,
    AuthServerInterceptor,
    ClientCredential,
    Requirements,
    TokenVerifier,
    current_claims,
    pb,
)

from ..conftest import unique
from ..integration.helpers import add_user
from ..support import FakeClock
from ..tlsutil import TestCA
from .helpers import dead_port
from .test_verifier import forged

SERVICE = "test.Echo"
REQUIREMENTS = {
    f"/{SERVICE}/Whoami": Requirements(audience="orders", scopes=("read",)),
    f"/{SERVICE}/Stream": Requirements(audience="orders", scopes=("read",)),
    f"/{SERVICE}/Admin": Requirements(audience="orders", scopes=("admin",)),
    f"/{SERVICE}/Recent": Requirements(audience="orders", max_auth_age=60),
}
PUBLIC = (f"/{SERVICE}/Public", "/grpc.health.v1.Health/")
OK, UNAUTH, DENIED = grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED


def whoami() -> bytes:
    try:
        c = current_claims()
    except LookupError:
        return b"nobody"
    return f"{c.sub} {' '.join(c.scope)} {c.cnf_x5t_s256}".strip().encode()


async def aio_server(interceptor: AsyncAuthServerInterceptor, credentials: Any = None) -> tuple[grpc.aio.Server, int]:
    async def unary(request: bytes, context: Any) -> bytes:
        await asyncio.sleep(0)
        return whoami()

    async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for _ in range(2):
            await asyncio.sleep(0)
            yield whoami()

    handlers = {name: grpc.unary_unary_rpc_method_handler(unary) for name in ("Whoami", "Admin", "Recent", "Public")}
    handlers["Unmapped"] = grpc.unary_unary_rpc_method_handler(unary)
    handlers["Stream"] = grpc.unary_stream_rpc_method_handler(stream)
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = (
        server.add_secure_port("localhost:0", credentials)
        if credentials
        else server.add_insecure_port("127.0.0.1:0")
    )
    await server.start()
    return server, port


def sync_server(interceptor: AuthServerInterceptor) -> tuple[grpc.Server, int]:
    def unary(request: bytes, context: Any) -> bytes:
        return whoami()

    def stream(request: bytes, context: Any):
        for _ in range(2):
            yield whoami()

    handlers = {name: grpc.unary_unary_rpc_method_handler(unary) for name in ("Whoami", "Admin", "Recent", "Public")}
    handlers["Unmapped"] = grpc.unary_unary_rpc_method_handler(unary)
    handlers["Stream"] = grpc.unary_stream_rpc_method_handler(stream)
    # One worker: every call runs on the same thread, so leaked claims would show.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), interceptors=[interceptor])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    health_pb2_grpc.add_HealthServicer_to_server(health_sync.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@dataclass
class Caller:
    """Calls a server's methods with raw bytes; sync channels from a thread."""

    port: int
    sync: bool

    async def __call__(self, method: str, token: str | None = None, header: str | None = None):
        metadata: tuple[tuple[str, str], ...] = ()
        if token is not None:
            metadata = (("authorization", f"Bearer {token}"),)
        if header is not None:
            metadata = (("authorization", header),)
        stream = method == "Stream"
        path = f"/{SERVICE}/{method}"
        target = f"127.0.0.1:{self.port}"
        if self.sync:

            def call():
                ch: Any
                with grpc.insecure_channel(target) as ch:
                    if stream:
                        return list(ch.unary_stream(path)(b"", metadata=metadata, timeout=10))
                    return ch.unary_unary(path)(b"", metadata=metadata, timeout=10)

            try:
                return OK, await asyncio.to_thread(call)
            except grpc.RpcError as err:
                return err.code(), err.details()
        ach: Any
        async with grpc.aio.insecure_channel(target) as ach:
            try:
                if stream:
                    return OK, [r async for r in ach.unary_stream(path)(b"", metadata=metadata, timeout=10)]
                return OK, await ach.unary_unary(path)(b"", metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as err:
                return err.code(), err.details()

    async def health(self) -> int:
        def check():
            with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
                return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status

        return await asyncio.to_thread(check)


@dataclass
class Deployment:
    caller: Caller
    clock: FakeClock


def verifier_for(authsvc, settings, clock: FakeClock, **options) -> TokenVerifier:
    def client() -> AsyncAuthClient:  # made on the verifier's own loop
        return AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{authsvc.port}"))

    return TokenVerifier(client, issuer=settings.policy.issuer, clock=clock.now, **options)


@pytest.fixture(params=["aio", "threadpool"])
async def deployment(request, authsvc, settings, fake_clock) -> AsyncIterator[Deployment]:
    own = FakeClock(fake_clock.now())
    verifier = verifier_for(authsvc, settings, own)
    if request.param == "aio":
        await verifier.start()
        server, port = await aio_server(AsyncAuthServerInterceptor(verifier, REQUIREMENTS, public=PUBLIC))
        yield Deployment(Caller(port, sync=False), own)
        await server.stop(0)
        await verifier.close()
    else:
        await asyncio.to_thread(verifier.start_in_thread)
        threaded, port = sync_server(AuthServerInterceptor(verifier, REQUIREMENTS, public=PUBLIC))
        yield Deployment(Caller(port, sync=True), own)
        await asyncio.to_thread(lambda: threaded.stop(0).wait())
        await asyncio.to_thread(verifier.close_in_thread)


async def test_no_token_or_a_malformed_header_is_unauthenticated(deployment):
    call = deployment.caller
    assert await call("Whoami") == (UNAUTH, "invalid token")
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "Bearer a b", "token"):
        assert await call("Whoami", header=header) == (UNAUTH, "invalid token")


async def test_a_bad_token_is_unauthenticated_with_a_safe_message(
    deployment, authsvc_stub, store, passwords, fake_clock
):
    call = deployment.caller
    for token in ("garbage", "a.b.c", forged("rogue", fake_clock.now())):
        assert await call("Whoami", token) == (UNAUTH, "invalid token")
    user = await add_user(store, passwords, fake_clock, audiences=("billing",))
    elsewhere = await _issue(authsvc_stub, user, audience=["billing"])  # a real token, for another audience
    assert await call("Whoami", elsewhere) == (UNAUTH, "invalid token")


async def test_the_wrong_scope_is_permission_denied(deployment, authsvc_stub, store, passwords, fake_clock):
    user = await add_user(store, passwords, fake_clock, scopes=("read",))
    token = await _issue(authsvc_stub, user)
    assert await deployment.caller("Admin", token) == (DENIED, "insufficient scope")


async def test_a_good_token_reaches_the_handler_with_its_claims(deployment, authsvc_stub, store, passwords, fake_clock):
    call = deployment.caller
    user = await add_user(store, passwords, fake_clock, scopes=("read", "write"))
    token = await _issue(authsvc_stub, user)
    assert await call("Whoami", token) == (OK, f"{user.id} read write".encode())
    assert await call("Stream", token) == (OK, [f"{user.id} read write".encode()] * 2)
    # The claims do not outlive their call (one worker thread serves every call).
    assert await call("Public") == (OK, b"nobody")
    assert await call("Public", token) == (OK, b"nobody")  # public: the token is not even looked at
    assert await deployment.caller.health() == health_pb2.HealthCheckResponse.SERVING


async def test_unmapped_methods_are_refused_by_default(deployment, authsvc_stub, store, passwords, fake_clock):
    user = await add_user(store, passwords, fake_clock, scopes=("read", "admin"))
    token = await _issue(authsvc_stub, user)
    assert await deployment.caller("Unmapped", token) == (DENIED, "permission denied")
    assert await deployment.caller("Unmapped") == (DENIED, "permission denied")


async def test_a_revoked_token_is_refused(deployment, authsvc_stub, store, passwords, fake_clock):
    user = await add_user(store, passwords, fake_clock)
    token = await _issue(authsvc_stub, user)
    assert (await deployment.caller("Whoami", token))[0] == OK
    await authsvc_stub.Revoke(pb.RevokeRequest(token=token))
    for _ in range(200):
        if (await deployment.caller("Whoami", token))[0] != OK:
            break
        await asyncio.sleep(0.01)
    assert await deployment.caller("Whoami", token) == (UNAUTH, "invalid token")


async def test_an_old_login_must_reauthenticate(deployment, authsvc_stub, store, passwords, fake_clock):
    user = await add_user(store, passwords, fake_clock)
    token = await _issue(authsvc_stub, user)
    assert (await deployment.caller("Recent", token))[0] == OK
    deployment.clock.advance(61)
    expected = (grpc.StatusCode.FAILED_PRECONDITION, "re-authentication required")
    assert await deployment.caller("Recent", token) == expected


async def test_a_default_requirement_covers_unmapped_methods(
    authsvc, settings, fake_clock, authsvc_stub, store, passwords
):
    verifier = verifier_for(authsvc, settings, fake_clock)
    await verifier.start()
    interceptor = AsyncAuthServerInterceptor(verifier, {}, default=Requirements(audience="orders"))
    server, port = await aio_server(interceptor)
    try:
        user = await add_user(store, passwords, fake_clock, scopes=())
        token = await _issue(authsvc_stub, user)
        call = Caller(port, sync=False)
        assert await call("Unmapped", token) == (OK, user.id.encode())
        assert await call("Unmapped") == (UNAUTH, "invalid token")
    finally:
        await server.stop(0)
        await verifier.close()


async def test_a_verifier_without_revocations_answers_unavailable(
    authsvc, settings, fake_clock, authsvc_stub, store, passwords
):
    # Its stream never connects: fail closed, and say so with UNAVAILABLE, not "invalid token".
    verifier = TokenVerifier(
        AsyncAuthClient(grpc.aio.insecure_channel(f"127.0.0.1:{dead_port()}")),
        issuer=settings.policy.issuer,
        clock=fake_clock.now,
        fetch_jwks=lambda: _jwks(authsvc_stub),
    )
    await verifier.start(wait=0.1)
    server, port = await aio_server(AsyncAuthServerInterceptor(verifier, REQUIREMENTS))
    try:
        token = await _issue(authsvc_stub, await add_user(store, passwords, fake_clock))
        code, details = await Caller(port, sync=False)("Whoami", token)
        assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "authentication unavailable, retry later")
    finally:
        await server.stop(0)
        await verifier.close()


def test_requirements_must_name_methods_and_an_audience():
    verifier = TokenVerifier(fetch_jwks=_never, issuer="i", watch_revocations=False)
    with pytest.raises(ValueError):
        AsyncAuthServerInterceptor(verifier, {"Whoami": Requirements(audience="orders")})
    with pytest.raises(ValueError):
        AuthServerInterceptor(verifier, {"/a.B/C": Requirements(audience="")})


# --- certificate-bound tokens over mTLS ----------------------------------------------


async def test_a_certificate_bound_token_works_only_from_its_certificate(
    authsvc, settings, database_url, store, tmp_path
):
    ca = TestCA()
    authsvc_cert, billing, mallory, downstream = (
        ca.issue("authsvc", server=True),
        ca.issue("billing", uri="spiffe://test.example/sa/billing"),
        ca.issue("mallory", uri="spiffe://test.example/sa/mallory"),
        ca.issue("downstream", server=True),
    )
    cert, key = ca.write(tmp_path, authsvc_cert, "authsvc")
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    tls = TlsFiles(cert=cert, key=key, client_ca=tmp_path / "ca.crt")
    mtls = App(dataclasses.replace(settings, tls=tls), database_url, clock=FakeClock())
    await mtls.start()
    client_id = credentials.new_client_id()
    await store.create_client(
        client_id, unique("mtls"), b"", ["read"], ["orders"], mtls.clock.now(), tls_san_uri="spiffe://test.example/sa/billing"
    )

    def channel_as(who, port: int) -> grpc.aio.Channel:
        creds = grpc.ssl_channel_credentials(ca.pem, who.key_pem, who.cert_pem)
        return grpc.aio.secure_channel(f"localhost:{port}", creds)

    # The verifier follows the plain replica; both share the database and keys.
    verifier = verifier_for(authsvc, settings, mtls.clock)
    await verifier.start()
    server_creds = grpc.ssl_server_credentials(
        [(downstream.key_pem, downstream.cert_pem)], root_certificates=ca.pem, require_client_auth=True
    )
    server, port = await aio_server(AsyncAuthServerInterceptor(verifier, REQUIREMENTS), server_creds)
    try:
        async with AsyncAuthClient(channel_as(billing, mtls.port)) as authsvc:
            token = (await authsvc.issue(ClientCredential(client_id, ""), audience=["orders"])).access_token
        whoami_call = lambda ch: ch.unary_unary(f"/{SERVICE}/Whoami")(  # noqa: E731
            b"", metadata=(("authorization", f"Bearer {token}"),), timeout=10
        )
        async with channel_as(billing, port) as ch:
            assert await whoami_call(ch) == f"{client_id} read {billing.thumbprint}".encode()
        assert verifier.stats.cached == 1
        async with channel_as(mallory, port) as ch:  # the token stolen, the key not
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await whoami_call(ch)
        assert (err.value.code(), err.value.details()) == (UNAUTH, "invalid token")
        assert verifier.stats.hits == 1  # refused although cached: the binding is checked on every hit
    finally:
        await server.stop(0)
        await verifier.close()
        await mtls.stop(grace=0)


# --- helpers ---------------------------------------------------------------------------


async def _issue(authsvc_stub, user, audience=("orders",)) -> str:
    response = await authsvc_stub.Issue(
        pb.IssueRequest(
            password=pb.PasswordCredential(username=user.name, password=user.password), audience=list(audience)
        )
    )
    return response.tokens.access_token


async def _jwks(authsvc_stub) -> str:
    return (await authsvc_stub.GetJWKS(pb.GetJWKSRequest())).jwks_json


async def _never() -> str:
    raise AssertionError("not called")

