"""``authsvc user add | list | passwd | reset-mfa | disable | enable``, ``authsvc session list``"""

from __future__ import annotations

import argparse
import sys

from authsvc.cli._common import OPERATOR, Column, Verbs, find_user, joined, print_table, read_password, when
from authsvc.config import Settings
from authsvc.domain.clock import SystemClock
from authsvc.domain.identity import accounts
from authsvc.domain.identity.passwords import Passwords
from authsvc.domain.models import User
from authsvc.errors import Conflict, InvalidArgument
from authsvc.store.postgres import PostgresStore


async def _user_add(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    password = read_password(args.password_stdin)
    passwords = Passwords(settings.argon2)
    try:
        user_id = await accounts.create_user(
            store, passwords, SystemClock(), args.name, password, args.scope, args.audience, actor=OPERATOR
        )
    except InvalidArgument as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except Conflict:
        print(f"error: user {args.name!r} exists", file=sys.stderr)
        return 1
    finally:
        passwords.close()
    print(f"user {args.name} created, subject {user_id}")
    return 0


#: ``user list``: one column per entry.
USER_COLUMNS: list[Column[User]] = [
    ("SUBJECT", lambda u: u.id),
    ("USERNAME", lambda u: u.username),
    ("MFA", lambda u: "totp" if u.mfa_enrolled else "-"),
    ("SCOPES", lambda u: joined(u.scopes)),
    ("AUDIENCES", lambda u: joined(u.audiences)),
]


async def _user_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    print_table(USER_COLUMNS, await store.list_users())
    return 0


async def _user_passwd(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    user_id = await find_user(store, args.name)
    if user_id is None:
        return 1
    passwords = Passwords(settings.argon2)
    try:
        count = await accounts.change_password(
            store, passwords, SystemClock(), settings.policy, user_id, read_password(args.password_stdin), OPERATOR
        )
    finally:
        passwords.close()
    print(f"password changed; {count} session(s) revoked")
    return 0


async def _user_reset_mfa(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    user_id = await find_user(store, args.name)
    if user_id is None:
        return 1
    count = await accounts.reset_mfa(store, SystemClock(), settings.policy, user_id, OPERATOR)
    print(f"MFA removed; {count} session(s) revoked")
    return 0


async def _session_list(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    user_id = await find_user(store, args.user)
    if user_id is None:
        return 1
    for s in await store.sessions_of(user_id, args.all):
        last = when(s.last_refresh_at)
        state = "revoked" if s.revoked_at else "live"
        print(
            f"{s.id}  {state:<7} login={when(s.auth_time)} last_refresh={last} refreshes={s.refresh_count}"
            f" amr={','.join(s.amr)} peer={s.peer or '-'} agent={s.user_agent or '-'}"
        )
    return 0


async def _user_disable(settings: Settings, store: PostgresStore, args: argparse.Namespace) -> int:
    user_id = await find_user(store, args.name)
    if user_id is None:
        return 1
    disabled = args.action == "disable"
    count = await accounts.set_disabled(store, SystemClock(), settings.policy, user_id, disabled, OPERATOR)
    print(f"{args.name} disabled; {count} session(s) revoked" if disabled else f"{args.name} enabled")
    return 0


def register(verbs: Verbs) -> None:
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
    disable = user.add_parser("disable", help="refuse the user's logins and refreshes; revokes all sessions at once")
    disable.add_argument("name")
    disable.set_defaults(run=_user_disable)
    enable = user.add_parser("enable", help="let a disabled user log in again (old sessions stay revoked)")
    enable.add_argument("name")
    enable.set_defaults(run=_user_disable)

    session = verbs.add_parser("session", help="sessions").add_subparsers(dest="action", required=True)
    slist = session.add_parser("list", help="a user's sessions")
    slist.add_argument("user")
    slist.add_argument("--all", action="store_true", help="include revoked sessions")
    slist.set_defaults(run=_session_list)
