"""``authsvc audit list | verify | prune``"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from datetime import UTC, datetime, timedelta

from authsvc.cli._common import Verbs
from authsvc.config import Settings
from authsvc.domain.audit import query, trail
from authsvc.domain.audit.query import AuditEntry, AuditFilter
from authsvc.domain.clock import SystemClock
from authsvc.store.postgres import PostgresStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AGO = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def moment(text: str) -> float:
    """An ISO 8601 time (``2026-12-03T10:00:00Z``; UTC when no offset is
    given) or an age (``90s``, ``15m``, ``2h``, ``7d`` ago)."""
    ago = _AGO.fullmatch(text)
    if ago:
        return SystemClock().now() - int(ago.group(1)) * _UNIT[ago.group(2)]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time or an age: {text!r} (say 2026-12-03T10:00:00Z or 2h)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _age(text: str) -> float:
    ago = _AGO.fullmatch(text)
    if not ago:
        raise argparse.ArgumentTypeError(f"not an age: {text!r} (say 365d)")
    return float(int(ago.group(1)) * _UNIT[ago.group(2)])


def _as_json(entry: AuditEntry) -> str:
    fields = {"seq": entry.seq, "at": _utc(entry.event.at_us), **dataclasses.asdict(entry.event)}
    return json.dumps(fields)


def _utc(at_us: int) -> str:
    return (_EPOCH + timedelta(microseconds=at_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_line(entry: AuditEntry) -> str:
    e = entry.event
    parts = [f"{entry.seq:>8}", _utc(e.at_us), f"{e.event:<24}", f"{e.outcome or '-':<8}"]
    named = (
        ("subject", e.subject), ("actor", e.actor), ("client", e.client_id), ("session", e.session_id),
        ("peer", e.peer), ("request", e.request_id), ("detail", e.detail),
    )  # fmt: skip
    return "  ".join(parts + [f"{k}={v}" for k, v in named if v])


async def _list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    filters = AuditFilter(subject=args.subject, type=args.type, actor=args.actor, since=args.since, until=args.until)
    token, shown = "", 0
    while shown < args.limit:
        page = await query(store, filters, token, min(1000, args.limit - shown), newest_first=args.newest_first)
        for entry in page.entries:
            print(_as_json(entry) if args.json else _as_line(entry))
        shown += len(page.entries)
        token = page.next_page_token
        if not token:
            break
    return 0


async def _verify(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    result = await trail.verify(store)
    for lane in result.lanes:
        if lane.head.seq > lane.checkpoint.seq:
            span = f"seq {lane.checkpoint.seq + 1}..{lane.head.seq}"
            print(f"lane {lane.lane:>2}: {span:<16} head {lane.head.hash.hex()}")
    # What to keep elsewhere: a later run must show the same heads or longer chains.
    print(f"heads: {result.fingerprint}")
    lanes = f"{len(result.lanes)} lanes"
    if result.ok:
        print(f"ok: {result.rows} rows verified ({lanes})")
        return 0
    for problem in result.problems:
        print(problem, file=sys.stderr)
    print(f"FAILED: {len(result.problems)} problem(s) in {result.rows} rows ({lanes})", file=sys.stderr)
    return 1


async def _prune(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    dropped = await trail.prune(store, SystemClock().now(), args.older_than)
    print(f"pruned {dropped} row(s); the checkpoint keeps the chain verifiable")
    return 0


def register(verbs: Verbs) -> None:
    audit = verbs.add_parser("audit", help="the audit trail").add_subparsers(dest="action", required=True)
    ls = audit.add_parser("list", help="events, oldest first")
    ls.add_argument("--subject", default="", help="only events about this subject (a user or client id)")
    ls.add_argument("--type", default="", help="only this event (login_failed, refresh, revoke_session, ...)")
    ls.add_argument("--actor", default="", help="only events done by this actor")
    ls.add_argument("--since", type=moment, help="from this time (ISO 8601) or age (2h, 7d)")
    ls.add_argument("--until", type=moment, help="before this time (ISO 8601) or age")
    ls.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    ls.add_argument("--newest-first", action="store_true", help="newest first")
    ls.add_argument("--json", action="store_true", help="one JSON object a line")
    ls.set_defaults(run=_list)
    audit.add_parser(
        "verify", help="check the hash chain; exit 1 naming every edited, inserted or deleted row"
    ).set_defaults(run=_verify)
    prune = audit.add_parser("prune", help="drop old rows, leaving a checkpoint")
    prune.add_argument("--older-than", type=_age, required=True, help="an age: 365d, 12h")
    prune.set_defaults(run=_prune)
