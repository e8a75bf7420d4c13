"""The delegation scenarios in a smoke run: that they work, not how fast
(see bench/README.md). One worker, one call in flight, a scratch database."""

from __future__ import annotations

import asyncio
import base64
import secrets
import tempfile
import time
from pathlib import Path

import grpc

from authsvc.config import Settings
from authsvc_client import pb

from . import local
from .database import create_database, drop_database, load_signer, populate
from .scenarios import ISSUED, TOKENS, client_grant, exchange_request, mint
from .servers import authsvc_env, start_authsvc
from .settings import BenchConfig

CALLS = 200


async def _sequential(channel: grpc.aio.Channel, method: str, body: bytes, expect: bytes) -> float:
    call = channel.unary_unary(method)
    start = time.perf_counter()
    for _ in range(CALLS):
        answer = await call(body)
        if not answer.startswith(expect):
            raise RuntimeError(f"{method}: unexpected answer {answer[:16]!r}")
    return CALLS / (time.perf_counter() - start)


async def main() -> None:
    cfg = BenchConfig.from_env()
    kek = "bench:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    url = await create_database(cfg.admin_url, "authsvc_bench_smoke")
    settings = Settings.from_env(authsvc_env(url, kek))
    try:
        principals = await populate(url, settings.argon2, users=2)
        with tempfile.TemporaryDirectory() as tmp:
            server = start_authsvc(url, kek, Path(tmp), 1)
            try:
                signer = await load_signer(url, kek, settings.policy.issuer, settings.policy.access_ttl)
                subject = mint(signer, [client_grant(principals.client_id)])[0]
                exchange = exchange_request(principals.client_id, principals.client_secret, subject)
                credential = pb.ClientCredential(client_id=principals.client_id, client_secret=principals.client_secret)
                issue = pb.IssueRequest(client=credential).SerializeToString()
                async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                    rate = await _sequential(channel, "/authsvc.v1.AuthService/ExchangeToken", exchange, ISSUED)
                    print(f"ExchangeToken, delegated access token: {rate:,.0f}/s (1 in flight)")
                    rate = await _sequential(channel, "/authsvc.v1.AuthService/Issue", issue, TOKENS)
                    print(f"Issue, client credentials: {rate:,.0f}/s (1 in flight)")
                    jwks = pb.GetJWKSResponse.FromString(
                        await channel.unary_unary("/authsvc.v1.AuthService/GetJWKS")(b"")
                    ).jwks_json
                loc = await local.run(server.port, jwks, signer, 0.5)
                print(f"Local verify, access tokens: cold {loc.cold:,.0f}/s, warm {loc.warm:,.0f}/s "
                      f"(bare verify {loc.ceiling:,.0f}/s)")  # fmt: skip
                txn = await local.run_txn(server.port, signer, principals, 0.5)
                print(f"Local verify, Txn-Tokens: {txn:,.0f}/s")
            finally:
                server.stop()
    finally:
        await drop_database(cfg.admin_url, url)


if __name__ == "__main__":
    asyncio.run(main())
