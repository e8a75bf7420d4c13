"""``authsvc serve | migrate | user ... | client ... | keys ...``"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authsvc.config import ConfigError, Settings
from authsvc.domain import accounts, credentials, encryption, kek_rotation, rotation
from authsvc.domain.clock import SystemClock
from authsvc.domain.passwords import Passwords, check_new_password
from authsvc.errors import AuthError, Conflict
from authsvc.store.embedded import start_embedded
from authsvc.store.postgres import PostgresStore


def _database_url(settings: Settings) -> tuple[str, Any]:
    if settings.database_url:
        return settings.database_url, None
    return start_embedded(settings.data_dir)


async def _with_store(settings: Settings, url: str, work: Callable[[PostgresStore], Awaitable[int]]) -> int:
    store = await PostgresStore.connect(url, min_size=1, max_size=2)
    try:
        await store.migrate()
        return await work(store)
    finally:
        await store.close()


def _read_password(stdin: bool) -> str:
    if stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("passwords do not match")
    return first


async def _user_add(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    problem = check_new_password(password)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    passwords = Passwords(settings.argon2)
    try:
        pw_hash = await passwords.hash_async(password)
    finally:
        passwords.close()
    try:
        user_id = await store.create_user(args.name, pw_hash, args.scope, args.audience, SystemClock().now())
    except Conflict:
        print(f"error: user {args.name!r} exists", file=sys.stderr)
        return 1
    print(f"user {args.name} created, subject {user_id}")
    return 0


async def _user_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    for u in await store.list_users():
        mfa = "mfa" if u.mfa_enrolled else "-"
        print(f"{u.id}  {u.username:<24} {mfa:<4} scopes={','.join(u.scopes) or '-'}")
    return 0


async def _find_user(store: PostgresStore, name: str) -> str | None:
    user = await store.user_by_name(name)
    if user is None:
        print(f"error: no user {name!r}", file=sys.stderr)
        return None
    return user.id


async def _user_passwd(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    user_id = await _find_user(store, args.name)
    if user_id is None:
        return 1
    passwords = Passwords(settings.argon2)
    try:
        count = await accounts.change_password(
            store, passwords, SystemClock(), settings.policy, user_id, _read_password(args.password_stdin)
        )
    finally:
        passwords.close()
    print(f"password changed; {count} session(s) revoked")
    return 0


async def _user_reset_mfa(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    user_id = await _find_user(store, args.name)
    if user_id is None:
        return 1
    count = await accounts.reset_mfa(store, SystemClock(), settings.policy, user_id)
    print(f"MFA removed; {count} session(s) revoked")
    return 0


async def _session_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    user_id = await _find_user(store, args.user)
    if user_id is None:
        return 1
    for s in await store.sessions_of(user_id, args.all):
        last = _when(s.last_refresh_at)
        state = "revoked" if s.revoked_at else "live"
        print(
            f"{s.id}  {state:<7} login={_when(s.auth_time)} last_refresh={last} refreshes={s.refresh_count}"
            f" amr={','.join(s.amr)} peer={s.peer or '-'} agent={s.user_agent or '-'}"
        )
    return 0


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _client_add(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    if not args.audience:
        print("error: a client needs at least one --audience", file=sys.stderr)
        return 2
    client_id, secret = credentials.new_client_id(), credentials.new_client_secret()
    try:
        await store.create_client(
            client_id, args.name, credentials.digest(secret), args.scope, args.audience, SystemClock().now()
        )
    except Conflict:
        print(f"error: client {args.name!r} exists", file=sys.stderr)
        return 1
    print(f"client_id:     {client_id}")
    print(f"client_secret: {secret}")
    print("the secret is shown only now; store it safely", file=sys.stderr)
    return 0


async def _client_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    for c in await store.list_clients():
        print(f"{c.id}  {c.name:<24} aud={','.join(c.audiences)} scopes={','.join(c.scopes) or '-'}")
    return 0


async def _keys_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    for k in await store.signing_keys():
        print(f"{k.kid}  {k.alg:<6} {k.state:<8} created={_when(k.created_at)} retired={_when(k.retired_at)}")
    return 0


async def _keys_rotate(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    done = await rotation.rotate(store, settings.load_kek(), settings.policy, SystemClock(), force=args.force)
    print(f"rotated: {done.activated} signs now; {done.retired} retired (published until its tokens expire)")
    return 0


async def _keys_revoke(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    await rotation.revoke_key(store, settings.load_kek(), settings.policy, SystemClock(), args.kid)
    print(f"revoked {args.kid}: its tokens no longer verify")
    return 0


async def _kek_rotate(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    kek = settings.load_kek()
    counts = await kek_rotation.reseal_all(store, kek)
    done = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    print(f"re-sealed under key-encryption key {kek.current!r}: {done}")
    print("older keys may now be removed from AUTHSVC_KEK", file=sys.stderr)
    return 0


async def _audience_set_key(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    try:
        key = encryption.parse_audience_key(args.audience, Path(args.jwk).read_text())
    except (OSError, encryption.BadEncryptionKey) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    await store.set_audience_key(key, SystemClock().now())
    print(f"tokens for {args.audience} are encrypted to {key.kid} ({key.alg}) when AUTHSVC_ENCRYPT_TOKENS is on")
    return 0


async def _audience_remove_key(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    if not await store.remove_audience_key(args.audience):
        print(f"error: no key for {args.audience!r}", file=sys.stderr)
        return 1
    print(f"removed; tokens for {args.audience} are encrypted to authsvc's own key")
    return 0


async def _audience_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    for key in await store.audience_keys():
        print(f"{key.audience:<24} {key.alg:<15} {key.kid}")
    return 0


async def _migrate(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    print("schema is up to date")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authsvc", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("serve", help="run the gRPC service")
    verbs.add_parser("migrate", help="apply database migrations")

    user = verbs.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="add a user; the password is read from a prompt or stdin")
    add.add_argument("name")
    add.add_argument("--scope", action="append", default=[], help="a scope the user may get (repeat)")
    add.add_argument("--audience", action="append", default=[], help="an audience beyond authsvc (repeat)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(run=_user_add)
    user.add_parser("list", help="list users").set_defaults(run=_user_list)
    passwd = user.add_parser("passwd", help="set a new password (read from a prompt or stdin); revokes all sessions")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd.set_defaults(run=_user_passwd)
    reset = user.add_parser("reset-mfa", help="remove the user's TOTP and recovery codes; revokes all sessions")
    reset.add_argument("name")
    reset.set_defaults(run=_user_reset_mfa)

    session = verbs.add_parser("session", help="sessions").add_subparsers(dest="action", required=True)
    slist = session.add_parser("list", help="a user's sessions")
    slist.add_argument("user")
    slist.add_argument("--all", action="store_true", help="include revoked sessions")
    slist.set_defaults(run=_session_list)

    client = verbs.add_parser("client", help="manage service clients").add_subparsers(dest="action", required=True)
    cadd = client.add_parser("add", help="add a client; prints its secret once")
    cadd.add_argument("name")
    cadd.add_argument("--scope", action="append", default=[], help="a scope the client may get (repeat)")
    cadd.add_argument("--audience", action="append", default=[], help="an audience it may get (repeat)")
    cadd.set_defaults(run=_client_add)
    client.add_parser("list", help="list clients").set_defaults(run=_client_list)

    keys = verbs.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True)
    keys.add_parser("list", help="list signing keys").set_defaults(run=_keys_list)
    rotate = keys.add_parser("rotate", help="promote the next key; the active one retires")
    rotate.add_argument("--force", action="store_true", help="even if the next key is newly published")
    rotate.set_defaults(run=_keys_rotate)
    krevoke = keys.add_parser("revoke", help="withdraw a compromised key at once")
    krevoke.add_argument("kid")
    krevoke.set_defaults(run=_keys_revoke)

    audience = verbs.add_parser("audience", help="encryption keys of audiences").add_subparsers(
        dest="action", required=True
    )
    setkey = audience.add_parser("set-key", help="register an audience's public encryption JWK")
    setkey.add_argument("audience")
    setkey.add_argument("--jwk", required=True, help="file with the public JWK (ECDH-ES+A256KW or RSA-OAEP-256)")
    setkey.set_defaults(run=_audience_set_key)
    rmkey = audience.add_parser("remove-key", help="forget an audience's encryption key")
    rmkey.add_argument("audience")
    rmkey.set_defaults(run=_audience_remove_key)
    audience.add_parser("list", help="audiences with encryption keys").set_defaults(run=_audience_list)

    kek = verbs.add_parser("kek", help="key-encryption key").add_subparsers(dest="action", required=True)
    kek.add_parser(
        "rotate", help="re-seal every secret under the first key of AUTHSVC_KEK (list the old one after it)"
    ).set_defaults(run=_kek_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"authsvc: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url, embedded = _database_url(settings)
    try:
        if args.verb == "serve":
            from authsvc.server import serve

            asyncio.run(serve(settings, url))
            return 0
        if args.verb == "migrate":
            return asyncio.run(_with_store(settings, url, lambda s: _migrate(settings, s, args)))
        return asyncio.run(_with_store(settings, url, lambda s: args.run(settings, s, args)))
    except AuthError as exc:
        print(f"authsvc: {exc.message}", file=sys.stderr)
        return 1
    finally:
        del embedded
