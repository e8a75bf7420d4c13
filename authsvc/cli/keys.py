"""``authsvc keys list | rotate | revoke``, ``authsvc kek rotate``, ``authsvc audience ...``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from authsvc.cli._common import OPERATOR, Verbs, when
from authsvc.config import Settings
from authsvc.domain.clock import SystemClock
from authsvc.domain.tokens import encryption, kek_rotation, key_rotation
from authsvc.store.postgres import PostgresStore


async def _keys_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    for k in await store.signing_keys():
        print(f"{k.kid}  {k.alg:<6} {k.state:<8} created={when(k.created_at)} retired={when(k.retired_at)}")
    return 0


async def _keys_rotate(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    done = await key_rotation.rotate(
        store, settings.load_kek(), settings.policy, SystemClock(), force=args.force, actor=OPERATOR
    )
    print(f"rotated: {done.activated} signs now; {done.retired} retired (published until its tokens expire)")
    return 0


async def _keys_revoke(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    await key_rotation.revoke_key(
        store, settings.load_kek(), settings.policy, SystemClock(), args.kid, actor=OPERATOR
    )
    print(f"revoked {args.kid}: its tokens no longer verify")
    return 0


async def _kek_rotate(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    kek = settings.load_kek()
    counts = await kek_rotation.reseal_all(store, kek, now=SystemClock().now(), actor=OPERATOR)
    done = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    print(f"re-sealed under key-encryption key {kek.current!r}: {done}")
    print("older keys may now be removed from AUTHSVC_KEK", file=sys.stderr)
    return 0


async def _audience_set_key(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    try:
        key = encryption.parse_audience_key(
            args.audience, Path(args.jwk).read_text(), require_encrypted=args.require_encrypted
        )
    except (OSError, encryption.BadEncryptionKey) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    await store.set_audience_key(key, SystemClock().now())
    if key.require_encrypted:
        print(f"tokens for {args.audience} are always encrypted to {key.kid} ({key.alg}); bare signed ones are refused")
    else:
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
        required = "encrypted only" if key.require_encrypted else "-"
        print(f"{key.audience:<24} {key.alg:<15} {required:<15} {key.kid}")
    return 0


def register(verbs: Verbs) -> None:
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
    setkey.add_argument(
        "--require-encrypted",
        action="store_true",
        help="accept only encrypted tokens for this audience (Verify refuses bare signed ones: NOT_ENCRYPTED)",
    )
    setkey.set_defaults(run=_audience_set_key)
    rmkey = audience.add_parser("remove-key", help="forget an audience's encryption key")
    rmkey.add_argument("audience")
    rmkey.set_defaults(run=_audience_remove_key)
    audience.add_parser("list", help="audiences with encryption keys").set_defaults(run=_audience_list)

    kek = verbs.add_parser("kek", help="key-encryption key").add_subparsers(dest="action", required=True)
    kek.add_parser(
        "rotate", help="re-seal every secret under the first key of AUTHSVC_KEK (list the old one after it)"
    ).set_defaults(run=_kek_rotate)
