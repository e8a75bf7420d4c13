"""``authsvc serve | migrate | user ... | session ... | client ... | keys ... | audience ... | kek ...``

One module per group of verbs; this one parses, loads settings, finds the
database (embedded when no URL is set) and dispatches.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from authsvc.cli import clients, keys, users
from authsvc.config import ConfigError, Settings
from authsvc.errors import AuthError
from authsvc.store.embedded import start_embedded
from authsvc.store.postgres import PostgresStore


def _database_url(settings: Settings) -> tuple[str, Any]:
    if settings.database_url:
        return settings.database_url, None
    return start_embedded(settings.data_dir)


async def _with_store(
    url: str, work: Callable[[PostgresStore], Awaitable[int]], *, transaction_pooling: bool = False
) -> int:
    store = await PostgresStore.connect(url, min_size=1, max_size=2, transaction_pooling=transaction_pooling)
    try:
        await store.migrate()
        return await work(store)
    finally:
        await store.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authsvc", description="authsvc: the token service")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("serve", help="run the gRPC service (migrates first)")
    verbs.add_parser("migrate", help="apply database migrations")
    for module in (users, clients, keys):
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(serving=args.verb == "serve")
    except ConfigError as exc:
        print(f"authsvc: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        url, embedded = _database_url(settings)
    except RuntimeError as exc:  # no URL and no embedded PostgreSQL installed
        print(f"authsvc: {exc}", file=sys.stderr)
        return 2
    try:
        if args.verb == "serve" and settings.workers > 1:
            from authsvc.workers import supervise

            return supervise(settings, url)
        if args.verb == "serve":
            from authsvc.server import serve

            asyncio.run(serve(settings, url))
            return 0
        pooled = settings.database_pooling == "transaction"
        if args.verb == "migrate":
            return asyncio.run(_with_store(url, _report_migrated, transaction_pooling=pooled))
        return asyncio.run(
            _with_store(url, lambda store: args.run(settings, store, args), transaction_pooling=pooled)
        )
    except ConfigError as exc:
        print(f"authsvc: bad setting: {exc}", file=sys.stderr)
        return 2
    except AuthError as exc:
        print(f"authsvc: {exc.message}", file=sys.stderr)
        return 1
    finally:
        del embedded


async def _report_migrated(store: PostgresStore) -> int:
    print("schema is up to date")
    return 0
