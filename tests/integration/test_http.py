"""The HTTP side port: public keys for browsers and non-gRPC services,
Prometheus metrics, a health probe."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest

from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..support import FakeClock


@pytest.fixture(scope="module")
async def side(settings, database_url) -> AsyncIterator[App]:
    async with App(dataclasses.replace(settings, http_listen="127.0.0.1:0"), database_url, clock=FakeClock()) as app:
        yield app


def fetch(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


async def test_jwks_over_http_is_public_and_matches_grpc(side):
    status, headers, body = await asyncio.to_thread(fetch, side.http_port, "/.well-known/jwks.json")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Type"] == "application/jwk-set+json"
    keys = json.loads(body)["keys"]
    assert keys and all(not {"d", "p", "q", "k"} & k.keys() for k in keys)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{side.port}") as ch:
        over_grpc = await pb_grpc.AuthServiceStub(ch).GetJWKS(pb.GetJWKSRequest())
    assert json.loads(over_grpc.jwks_json) == json.loads(body)


async def test_metrics_count_rpcs_by_code(side):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{side.port}") as ch:
        stub = pb_grpc.AuthServiceStub(ch)
        await stub.Verify(pb.VerifyRequest(token="garbage", audience="orders"))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Verify(pb.VerifyRequest(token="garbage"))
    status, headers, body = await asyncio.to_thread(fetch, side.http_port, "/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'authsvc_rpc_total{method="Verify",code="OK"} 1' in text
    assert 'authsvc_rpc_total{method="Verify",code="INVALID_ARGUMENT"} 1' in text
    assert 'authsvc_rpc_seconds_count{method="Verify"} 2' in text
    assert "authsvc_up 1" in text


async def test_health_and_metrics_are_never_cached(side):
    for path in ("/healthz", "/livez", "/readyz", "/metrics"):
        status, headers, _ = await asyncio.to_thread(fetch, side.http_port, path)
        assert (status, headers["Cache-Control"]) == (200, "no-store"), path


async def test_cors_preflight_on_the_public_documents(side):
    for path in ("/.well-known/jwks.json", "/.well-known/oauth-authorization-server"):
        status, headers, body = await asyncio.to_thread(fetch, side.http_port, path, "OPTIONS")
        assert status == 204 and body == b"", path
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert "GET" in headers["Access-Control-Allow-Methods"]


async def test_health_and_refusals(side):
    assert (await asyncio.to_thread(fetch, side.http_port, "/healthz"))[:1] == (200,)
    assert (await asyncio.to_thread(fetch, side.http_port, "/nothing"))[0] == 404
    assert (await asyncio.to_thread(fetch, side.http_port, "/metrics", "POST"))[0] == 405
    # Junk that is not HTTP gets a 400 and a closed connection, nothing more.
    reader, writer = await asyncio.open_connection("127.0.0.1", side.http_port)
    writer.write(b"\xff" * 10000 + b"\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.") and answer.split(b" ")[1] == b"400"


async def test_metrics_for_operators(side, passwords):
    """Verify outcomes by reason, revocation lag, signing key age, security
    events (failed logins), and the database pool, on /metrics."""
    from .helpers import add_client, add_user

    store = side.deps.store
    user = await add_user(store, passwords, side.clock)
    client = await add_client(store, side.clock)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{side.port}") as ch:
        stub = pb_grpc.AuthServiceStub(ch)
        cred = pb.ClientCredential(client_id=client.id, client_secret=client.secret)
        token = (await stub.Issue(pb.IssueRequest(client=cred, audience=["orders"]))).tokens.access_token
        await stub.Verify(pb.VerifyRequest(token=token, audience="orders"))
        await stub.Verify(pb.VerifyRequest(token=token, audience="billing"))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Issue(pb.IssueRequest(password=pb.PasswordCredential(username=user.name, password="no")))
        await stub.Revoke(pb.RevokeRequest(token=token))
        await stub.Verify(pb.VerifyRequest(token=token, audience="orders"))
    text = (await asyncio.to_thread(fetch, side.http_port, "/metrics"))[2].decode()
    assert 'authsvc_verify_total{outcome="ACTIVE"} 1' in text
    assert 'authsvc_verify_total{outcome="WRONG_AUDIENCE"} 1' in text
    assert 'authsvc_verify_total{outcome="REVOKED"} 1' in text
    assert 'authsvc_security_events_total{event="login_failed"}' in text
    lag = float(
        next(line for line in text.splitlines() if line.startswith("authsvc_revocation_lag_seconds ")).split()[1]
    )
    assert lag >= 0  # on this replica's clock, from the revocations of every test so far
    age = float(
        next(line for line in text.splitlines() if line.startswith("authsvc_signing_key_age_seconds ")).split()[1]
    )
    assert age >= 0
    assert (
        'authsvc_db_pool_connections{state="in_use"}' in text and 'authsvc_db_pool_connections{state="max"} 16' in text
    )
