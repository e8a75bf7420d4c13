"""Interop with implementations that share no code with authsvc: Node.js
`jose` verifies (and decrypts) our tokens from the published JWKS alone, and
`@grpc/grpc-js` calls Issue and Verify. Runs wherever Node.js is installed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from jwcrypto import jwk

from authsvc.domain.tokens.encryption import parse_audience_key
from authsvc.server import App
from authsvc_client import grpc as pb_grpc
from authsvc_client import pb

from ..integration.helpers import add_client
from ..support import FakeClock

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
PROTOS = Path(__file__).resolve().parents[2] / "protos"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed here")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The pinned packages of tests/node, installed once (npm ci from the lock file)."""
    if not (NODE_DIR / "node_modules" / "jose").exists():
        subprocess.run(["npm", "ci"], cwd=NODE_DIR, check=True, timeout=300, capture_output=True)
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="module")
async def plain(settings, database_url) -> AsyncIterator[App]:
    """A replica on a clock near the real time: Node.js checks exp and nbf
    against its own clock, not the tests' fake one."""
    async with App(settings, database_url, clock=FakeClock()) as app:
        yield app


@pytest.fixture(scope="module")
async def encrypting(settings, database_url) -> AsyncIterator[App]:
    """A replica with nested tokens on: the Node.js side decrypts them."""
    policy = dataclasses.replace(settings.policy, encrypt_tokens=True)
    async with App(dataclasses.replace(settings, policy=policy), database_url, clock=FakeClock()) as app:
        yield app


def run_node(payload: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", "interop.mjs"],
        cwd=NODE_DIR, input=json.dumps(payload), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_node_jose_and_grpc_js(node_modules, plain, store, clock, encrypting):
    client = await add_client(store, clock, audiences=("orders", "ledger"))
    # A service "ledger" registered its encryption key; get a nested token for it.
    private = jwk.JWK.generate(kty="EC", crv="P-256")
    public = {**private.export_public(as_dict=True), "alg": "ECDH-ES+A256KW", "use": "enc"}
    await encrypting.deps.store.set_audience_key(parse_audience_key("ledger", json.dumps(public)), clock.now())
    await encrypting.maintain_keys()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{encrypting.port}") as ch:
        cred = pb.ClientCredential(client_id=client.id, client_secret=client.secret)
        nested = (await pb_grpc.AuthServiceStub(ch).Issue(pb.IssueRequest(client=cred, audience=["ledger"]))).tokens
    # In a thread: the server under test runs on this event loop.
    seen = await asyncio.to_thread(
        run_node,
        {
            "addr": f"127.0.0.1:{plain.port}",
            "proto_dir": str(PROTOS),
            "issuer": "authsvc-test",
            "audience": "orders",
            "client_id": client.id,
            "client_secret": client.secret,
            "jwe_token": nested.access_token,
            "jwe_audience": "ledger",
            "jwe_private_jwk": {**private.export_private(as_dict=True), "alg": "ECDH-ES+A256KW"},
        },
    )
    assert seen["grpc"]["active"] is True and seen["grpc"]["sub"] == client.id
    assert seen["grpc"]["bad_secret"] == "UNAUTHENTICATED"
    assert seen["grpc"]["bad_secret_details"] == "invalid credentials"
    assert seen["jws"] == {
        "sub": client.id, "alg": "EdDSA", "typ": "at+jwt", "wrong_audience": "ERR_JWT_CLAIM_VALIDATION_FAILED"
    }
    assert seen["jwe"] == {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT", "sub": client.id}
