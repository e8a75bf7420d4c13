"""``authsvc serve | migrate | config | health | user | session | client | keys | audience | kek | audit ...``

One module per group of verbs; this one parses, loads settings, finds the
database (embedded when no URL is set) and dispatches.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from authsvc import logs
from authsvc.cli import audit, clients, keys, users
from authsvc.cli import settings as settings_verb
from authsvc.config import ConfigError, Settings
from authsvc.errors import AuthError, DatabaseUnreachable
from authsvc.store.embedded import NoEmbeddedDatabase, start_embedded
from authsvc.store.postgres import PostgresStore

log = logging.getLogger("authsvc")
EXIT_BAD_SETUP = 2  # a setting, or the database it names, is wrong: fix and rerun


def _database_url(settings: Settings, *, create: bool) -> tuple[str, Any]:
    if settings.database_url:
        return settings.database_url, None
    return start_embedded(settings.data_dir, create=create)


async def _with_store(
    url: str, work: Callable[[PostgresStore], Awaitable[int]], *, transaction_pooling: bool = False
) -> int:
    store = await PostgresStore.connect(url, min_size=1, max_size=2, transaction_pooling=transaction_pooling)
    try:
        await store.migrate()
        return await work(store)
    finally:
        await store.close()


def _version() -> str:
    try:
        return version("authsvc")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authsvc", description="authsvc: the token service")
    parser.add_argument("--version", action="version", version=f"authsvc {_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("serve", help="run the gRPC service (migrates first)")
    verbs.add_parser("migrate", help="apply database migrations")
    verbs.add_parser("config", help="print the effective configuration (secrets masked) and check it")
    verbs.add_parser("health", help="ask the local server's health service (exit 0 when SERVING)")
    for module in (users, clients, keys, audit):
        module.register(verbs)
    return parser


def _bad_database(settings: Settings, exc: DatabaseUnreachable) -> int:
    """One line: the setting, what failed where, what to do."""
    setting = "AUTHSVC_DATABASE_URL" if settings.database_url else f"the embedded PostgreSQL in {settings.data_dir}"
    print(f"authsvc: {setting}: {exc.detail}", file=sys.stderr)
    return EXIT_BAD_SETUP


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # The whole configuration is checked before anything touches a database.
        settings = Settings.from_env(serving=args.verb == "serve")
    except ConfigError as exc:
        print(f"authsvc: bad setting: {exc}", file=sys.stderr)
        return EXIT_BAD_SETUP
    logs.configure(settings.log_level, settings.log_format)
    for warning in settings.warnings:
        log.warning("%s", warning)
    if args.verb == "config":
        return settings_verb.show(settings)
    if args.verb == "health":
        from authsvc.cli import health

        return health.probe(settings)
    embedded: Any = None
    try:
        url, embedded = _database_url(settings, create=args.verb == "serve")
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
    except NoEmbeddedDatabase as exc:  # no URL, and no embedded database to use
        print(f"authsvc: {exc}", file=sys.stderr)
        return EXIT_BAD_SETUP
    except ConfigError as exc:
        print(f"authsvc: bad setting: {exc}", file=sys.stderr)
        return EXIT_BAD_SETUP
    except DatabaseUnreachable as exc:
        return _bad_database(settings, exc)
    except AuthError as exc:
        print(f"authsvc: {exc.message}", file=sys.stderr)
        return 1
    finally:
        del embedded


async def _report_migrated(store: PostgresStore) -> int:
    print("schema is up to date")
    return 0
