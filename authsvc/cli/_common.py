"""What the verb modules share."""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime
from typing import Any

from authsvc.store.postgres import PostgresStore

Verbs = Any  # argparse's _SubParsersAction, which typeshed keeps private

#: Who the audit log says acted, for changes made with the CLI (on the database).
OPERATOR = f"operator:{os.environ.get('USER') or 'unknown'}"


def read_password(stdin: bool) -> str:
    """From stdin when asked or when stdin is not a terminal; else a prompt,
    twice. Never from argv, where every user of the machine can read it."""
    if stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("passwords do not match")
    return first


async def find_user(store: PostgresStore, name: str) -> str | None:
    user = await store.user_by_name(name)
    if user is None:
        print(f"error: no user {name!r}", file=sys.stderr)
        return None
    return user.id


def when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
