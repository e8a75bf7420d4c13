"""``authsvc client add | set | list | rotate-secret``"""

from __future__ import annotations

import argparse
import sys

from authsvc.cli._common import OPERATOR, Column, Verbs, joined, print_table
from authsvc.config import Settings
from authsvc.domain.clock import SystemClock
from authsvc.domain.identity import clients
from authsvc.domain.models import Client
from authsvc.errors import Conflict, InvalidArgument, NotFound
from authsvc.store.postgres import PostgresStore


async def _client_add(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    if not args.audience:
        print("error: a client needs at least one --audience", file=sys.stderr)
        return 2
    mtls = bool(args.tls_san_uri or args.tls_thumbprint)
    try:
        # The same rules as the AdminService's CreateClient.
        done = await clients.register(
            store, SystemClock(), args.name, args.scope, args.audience,
            tls_san_uri=args.tls_san_uri or "", tls_thumbprint=args.tls_thumbprint or "", actor=OPERATOR,
            exchange_audiences=args.exchange_audience,
        )  # fmt: skip
    except InvalidArgument as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except Conflict:
        print(f"error: client {args.name!r} (or its certificate) exists", file=sys.stderr)
        return 1
    print(f"client_id:     {done.client_id}")
    if mtls:
        print(f"authenticates with its certificate: {args.tls_san_uri or args.tls_thumbprint}")
    else:
        print(f"client_secret: {done.secret}")
        print("the secret is shown only now; store it safely", file=sys.stderr)
    return 0


async def _client_set(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    if not args.exchange_audience and not args.no_exchange:
        print("error: nothing to set (--exchange-audience A, or --no-exchange)", file=sys.stderr)
        return 2
    if args.exchange_audience and args.no_exchange:
        print("error: --exchange-audience and --no-exchange contradict each other", file=sys.stderr)
        return 2
    try:
        await clients.set_exchange_audiences(store, SystemClock(), args.client, args.exchange_audience, OPERATOR)
    except InvalidArgument as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except NotFound:
        print(f"error: no client {args.client!r}", file=sys.stderr)
        return 1
    print(f"exchange audiences of {args.client}: {','.join(args.exchange_audience) or '-'}")
    return 0


def _certificate(c: Client) -> str:
    if c.tls_san_uri:
        return f"uri:{c.tls_san_uri}"
    return f"x5t#S256:{c.tls_thumbprint}" if c.tls_thumbprint else "-"


#: ``client list``: one column per entry.
CLIENT_COLUMNS: list[Column[Client]] = [
    ("CLIENT_ID", lambda c: c.id),
    ("NAME", lambda c: c.name),
    ("AUTH", lambda c: "mtls" if c.tls_san_uri or c.tls_thumbprint else "secret"),
    ("CERTIFICATE", _certificate),
    ("SCOPES", lambda c: joined(c.scopes)),
    ("AUDIENCES", lambda c: joined(c.audiences)),
    ("EXCHANGE", lambda c: joined(c.exchange_audiences)),  # audiences it may exchange tokens for (RFC 8693)
]


async def _client_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    print_table(CLIENT_COLUMNS, await store.list_clients())
    return 0


async def _client_rotate(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    secret = await clients.rotate_secret(
        store, SystemClock(), settings.policy, args.client_id, args.overlap, OPERATOR
    )
    overlap = settings.policy.client_secret_overlap if args.overlap is None else args.overlap
    print(f"client_secret: {secret}")
    print(f"the old secret works for {overlap} more second(s); the new one is shown only now", file=sys.stderr)
    return 0


def register(verbs: Verbs) -> None:
    client = verbs.add_parser("client", help="manage service clients").add_subparsers(dest="action", required=True)
    cadd = client.add_parser("add", help="add a client; prints its secret once")
    cadd.add_argument("name")
    cadd.add_argument("--scope", action="append", default=[], help="a scope the client may get (repeat)")
    cadd.add_argument("--audience", action="append", default=[], help="an audience it may get (repeat)")
    tls = cadd.add_mutually_exclusive_group()
    tls.add_argument("--tls-san-uri", help="authenticate by mTLS certificate with this URI SAN (a SPIFFE ID)")
    tls.add_argument("--tls-thumbprint", help="authenticate by mTLS certificate with this base64url SHA-256")
    cadd.add_argument(
        "--exchange-audience", action="append", default=[],
        help="an audience it may exchange received tokens for (RFC 8693; repeat); none by default",
    )  # fmt: skip
    cadd.set_defaults(run=_client_add)
    cset = client.add_parser("set", help="change a client's exchange policy")
    cset.add_argument("client", help="the client's id or name")
    cset.add_argument(
        "--exchange-audience", action="append", default=[],
        help="an audience it may exchange received tokens for (repeat); replaces the list",
    )  # fmt: skip
    cset.add_argument("--no-exchange", action="store_true", help="it may exchange no token")
    cset.set_defaults(run=_client_set)
    client.add_parser("list", help="list clients").set_defaults(run=_client_list)
    rotate = client.add_parser("rotate-secret", help="a new secret, printed once; the old one works for an overlap")
    rotate.add_argument("client_id")
    rotate.add_argument(
        "--overlap", type=int, default=None, help="seconds the old secret still works (AUTHSVC_CLIENT_SECRET_OVERLAP)"
    )
    rotate.set_defaults(run=_client_rotate)
