"""What the verb modules share."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from authsvc.store.postgres import PostgresStore

Verbs = Any  # argparse's _SubParsersAction, which typeshed keeps private
Row = TypeVar("Row")
#: A column of a listing: its header and how a row shows in it.
Column = tuple[str, Callable[[Row], str]]


def print_table(columns: Sequence[Column[Row]], rows: Iterable[Row]) -> None:
    """A header line and one aligned line per row. A listing is its list of
    columns, so a column is added in one line where the listing is defined."""
    cells = [[header for header, _ in columns]]
    cells += [[show(row) or "-" for _, show in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def joined(values: Iterable[str]) -> str:
    return ",".join(values) or "-"

#: Who the audit log says acted, for changes made with the CLI (on the database).
OPERATOR = f"cli:{os.environ.get('USER') or 'unknown'}"


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
