"""Local verification in one process and one thread, beside its ceiling: a
bare ``cryptography`` signature check plus base64url and json.loads of the
same tokens.

The figure is the client package's TokenVerifier (keys from GetJWKS, the
revocation stream open, its default cache), called as a service would:
``await verifier.verify(token, requirements)``. "Cold": every token new, so
each call checks a signature (and the verifier's stats must say so). "Warm":
the same few tokens again (cache hits; every claim rule still applied).
Without a TokenVerifier in authsvc_client, ``verify_access_token`` with a
KeySet from GetJWKS stands in, and warm is then the cold path again.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

import authsvc_client
from authsvc_client import KeySet, Requirements, verify_access_token

from .database import TRUST_DOMAIN, Principals, SignerSpec
from .scenarios import AUDIENCE, client_grant, mint, user_grant

WARM_SET = 16
TXN_SET = 16
_BATCH = 256


@dataclass(frozen=True)
class LocalResult:
    cold: float  # verifications per second
    warm: float
    ceiling: float
    calls: dict[str, int]
    note: str


def _rate(
    work: Callable[[str], object], tokens: list[str], seconds: float, *, cycle: bool
) -> tuple[float, int]:
    """Calls per second of ``work`` over ``tokens`` in order, for about
    ``seconds``; without ``cycle`` each token once, so the run ends early if
    the host turns out faster than the tokens were counted for."""
    done, n = 0, len(tokens)
    start = time.perf_counter()
    while True:
        for i in range(_BATCH):
            work(tokens[(done + i) % n])
        done += _BATCH
        if time.perf_counter() >= start + seconds or (not cycle and done + _BATCH > n):
            return done / (time.perf_counter() - start), done


async def _arate(
    work: Callable[[str], Awaitable[object]], tokens: list[str], seconds: float, *, cycle: bool
) -> tuple[float, int]:
    done, n = 0, len(tokens)
    start = time.perf_counter()
    while True:
        for i in range(_BATCH):
            await work(tokens[(done + i) % n])
        done += _BATCH
        if time.perf_counter() >= start + seconds or (not cycle and done + _BATCH > n):
            return done / (time.perf_counter() - start), done


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _tokens(signer: SignerSpec, jwks_json: str, seconds: float) -> tuple[list[str], float, int]:
    """Enough distinct tokens that no run sees one twice; the ceiling's rate."""
    public = KeySet.from_jwks(jwks_json)[signer.kid].key

    def bare(token: str) -> object:
        header, payload, signature = token.split(".")
        json.loads(_b64(header))
        claims = json.loads(_b64(payload))
        public.verify(_b64(signature), f"{header}.{payload}".encode())  # type: ignore[call-arg]
        return claims

    probe = mint(signer, [user_grant() for _ in range(2000)])
    rough, _ = _rate(bare, probe, 0.3, cycle=True)
    tokens = probe + mint(signer, [user_grant() for _ in range(int(rough * seconds * 1.5))])
    ceiling, calls = _rate(bare, tokens, seconds, cycle=False)
    return tokens, ceiling, calls


async def run(port: int, jwks_json: str, signer: SignerSpec, seconds: float) -> LocalResult:
    tokens, ceiling, n_ceiling = _tokens(signer, jwks_json, seconds)
    requirements = Requirements(audience=AUDIENCE, scopes=("read",))
    verifier_cls = getattr(authsvc_client, "TokenVerifier", None)
    if verifier_cls is None:
        keys = KeySet.from_jwks(jwks_json)

        def local(token: str) -> object:
            return verify_access_token(
                token, keys=keys, issuer=signer.issuer, requirements=requirements, now=time.time()
            )

        cold, n_cold = _rate(local, tokens, seconds, cycle=False)
        warm, n_warm = _rate(local, tokens[:WARM_SET], seconds, cycle=True)
        note = "authsvc_client has no TokenVerifier: verify_access_token with a KeySet from GetJWKS stood in"
    else:
        client_cls = authsvc_client.AsyncAuthClient
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        verifier = verifier_cls(lambda: client_cls(channel), issuer=signer.issuer)
        await verifier.start()
        try:
            if verifier.stats.stale:
                raise RuntimeError("TokenVerifier: the revocation stream did not open")
            before = verifier.stats.misses
            cold, n_cold = await _arate(lambda t: verifier.verify(t, requirements), tokens, seconds, cycle=False)
            if verifier.stats.misses - before < n_cold:
                raise RuntimeError("TokenVerifier: the cold run hit its cache")
            for token in tokens[:WARM_SET]:
                await verifier.verify(token, requirements)
            warm, n_warm = await _arate(
                lambda t: verifier.verify(t, requirements), tokens[:WARM_SET], seconds, cycle=True
            )
        finally:
            await verifier.close()
        note = "TokenVerifier (GetJWKS keys, revocation stream open, default cache)"
    return LocalResult(cold, warm, ceiling, {"cold": n_cold, "warm": n_warm, "ceiling": n_ceiling}, note)


async def run_txn(port: int, signer: SignerSpec, principals: Principals, seconds: float) -> float:
    """Local Txn-Token verifications per second: TokenVerifier.verify_txn (the
    GetJWKS keys, the revocation stream open) over Txn-Tokens that
    ExchangeToken issued. Txn-Tokens are not cached: every call checks a
    signature, as the cold access-token figure does."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = authsvc_client.AsyncAuthClient(channel)
    credential = authsvc_client.ClientCredential(principals.client_id, principals.client_secret)
    subject = mint(signer, [client_grant(principals.client_id)])[0]
    tokens = [
        (
            await client.exchange_token(
                credential, subject, requested_token_type=authsvc_client.TXN_TOKEN_TYPE, audience=[TRUST_DOMAIN],
                scope=["orders.read"], request_details={"order": i},
            )
        ).access_token
        for i in range(TXN_SET)
    ]  # fmt: skip
    verifier = authsvc_client.TokenVerifier(client, issuer=signer.issuer)
    await verifier.start()
    try:
        if verifier.stats.stale:
            raise RuntimeError("TokenVerifier: the revocation stream did not open")
        requirements = authsvc_client.TxnRequirements(TRUST_DOMAIN, ("orders.read",))
        rate, _ = await _arate(lambda t: verifier.verify_txn(t, requirements), tokens, seconds, cycle=True)
    finally:
        await verifier.close()
        await client.close()
    return rate
