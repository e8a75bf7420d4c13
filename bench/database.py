"""A scratch database per run, the principals the load uses, and the signing key."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import argon2
import asyncpg
from cryptography.hazmat.primitives import serialization

from authsvc.config import parse_kek
from authsvc.domain.identity import credentials
from authsvc.domain.identity.passwords import Argon2Params
from authsvc.domain.models import RefreshTokenRecord, Session
from authsvc.domain.tokens.signing_keys import open_key
from authsvc.store.postgres import PostgresStore

PASSWORD = "bench password, long enough"


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def create_database(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


EXCHANGE_AUDIENCE = "billing"
TRUST_DOMAIN = "authsvc"  # AUTHSVC_TRUST_DOMAIN's default: the issuer, which the bench leaves alone


@dataclass(frozen=True)
class Principals:
    usernames: tuple[str, ...]  # all with PASSWORD
    client_id: str
    client_secret: str


async def populate(url: str, params: Argon2Params, users: int) -> Principals:
    """Migrate, then add ``users`` users (one per in-flight login, so that no
    account counter is shared) and one service client."""
    hasher = argon2.PasswordHasher(
        time_cost=params.time_cost, memory_cost=params.memory_kib, parallelism=params.parallelism,
        type=argon2.Type.ID,
    )  # fmt: skip
    # One hash for all: each login still pays a full argon2id check.
    pw_hash = hasher.hash(PASSWORD)
    store = await PostgresStore.connect(url, min_size=1, max_size=2)
    try:
        await store.migrate()
        now = time.time()
        names = tuple(f"bench{i:03d}" for i in range(users))
        for name in names:
            await store.create_user(name, pw_hash, ("read", "write"), ("orders",), now)
        client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
        # It may also exchange tokens (RFC 8693) for billing and for Txn-Tokens
        # in the trust domain (the issuer by default): the ExchangeToken figures.
        await store.create_client(
            client_id, "bench-svc", credentials.digest(secret), ("orders.read",), ("orders",), now,
            exchange_audiences=(EXCHANGE_AUDIENCE, TRUST_DOMAIN),
        )  # fmt: skip
    finally:
        await store.close()
    return Principals(names, client_id, secret)


@dataclass(frozen=True)
class SignerSpec:
    """The server's active signing key, so load processes mint the tokens
    authsvc itself would (same code, same key) without an RPC each."""

    kid: str
    alg: str
    pkcs8: bytes
    issuer: str
    ttl: int


async def load_signer(url: str, kek: str, issuer: str, ttl: int) -> SignerSpec:
    store = await PostgresStore.connect(url, min_size=1, max_size=1)
    try:
        stored = [k for k in await store.signing_keys() if k.state == "active"]
    finally:
        await store.close()
    if not stored:
        raise RuntimeError("the server created no active signing key")
    key = open_key(stored[0], parse_kek(kek))
    der = key.private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SignerSpec(key.kid, key.alg, der, issuer, ttl)


async def open_sessions(url: str, usernames: tuple[str, ...], count: int) -> list[str]:
    """``count`` sessions as password logins leave them (spread over the
    users), written with the store's own ``create_session``; their first
    refresh tokens, for Refresh runs that spend each once."""
    store = await PostgresStore.connect(url, min_size=8, max_size=8)
    try:
        users = [await store.user_by_name(name) for name in usernames]
        now = time.time()

        async def one(i: int) -> str:
            user = users[i % len(users)]
            assert user is not None
            session = Session(
                id=str(uuid.uuid4()), user_id=user.id, subject=user.id, audiences=("authsvc", "orders"),
                scopes=("read", "write"), amr=("pwd",), acr="aal1", auth_time=now, created_at=now,
                expires_at=now + 3600, last_refresh_at=None, refresh_count=0, peer="ipv4:127.0.0.1:1",
                user_agent="bench", revoked_at=None,
            )  # fmt: skip
            token, token_id, secret = credentials.new_refresh_token()
            record = RefreshTokenRecord(
                id=token_id, session_id=session.id, secret_hash=credentials.digest(secret),
                scopes=session.scopes, created_at=now, expires_at=now + 3600,
            )  # fmt: skip
            if not await store.create_session(session, record, audit="login_ok"):
                raise RuntimeError("bench: a session could not be opened")
            return token

        tokens: list[str] = []
        for start in range(0, count, 1000):
            tokens += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 1000))))
        return tokens
    finally:
        await store.close()
