"""Operator actions on accounts: the rules the CLI and the AdminService share.

Every action that may mean a credential is known to someone else (a new
password, a reset second factor, a disable, a delete) ends every session.
``actor`` names who acted and ``call`` where from, for the audit trail: an
admin's id (AdminService), or ``cli:<os user>`` (the CLI, on the database).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from authsvc.domain import validate
from authsvc.domain.audit.record import Outcome
from authsvc.domain.clock import Clock
from authsvc.domain.identity.passwords import Passwords, check_new_password
from authsvc.domain.models import CallInfo
from authsvc.domain.policy import Policy
from authsvc.domain.ports import Store
from authsvc.errors import InvalidArgument, NotFound


def user_id(value: str, name: str = "id") -> str:
    """A user id as the store keeps it (a UUID), or INVALID_ARGUMENT."""
    validate.text(value, name)
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise InvalidArgument(f"{name} is malformed") from exc


async def create_user(
    store: Store,
    passwords: Passwords,
    clock: Clock,
    username: str,
    password: str,
    scopes: Sequence[str],
    audiences: Sequence[str],
    actor: str = "",
    call: CallInfo | None = None,
) -> str:
    """A new user; gives its id. A taken name is a Conflict."""
    validate.text(username, "username")
    if not username.isprintable() or username != username.strip():
        raise InvalidArgument("username must be printable, without surrounding spaces")
    scopes, audiences = validate.names(scopes, "scope"), validate.names(audiences, "audience")
    validate.text(password, "password", validate.MAX_SECRET)
    problem = check_new_password(password)
    if problem:
        raise InvalidArgument(problem)
    now = clock.now()
    new_id = await store.create_user(username, await passwords.hash_async(password), scopes, audiences, now)
    await store.audit(
        "user_created", now, subject=new_id, outcome=Outcome.OK, actor=actor, call=call, detail=f"username={username}"
    )
    return new_id


async def change_password(
    store: Store, passwords: Passwords, clock: Clock, policy: Policy, user_id: str, new_password: str, actor: str = "",
    call: CallInfo | None = None,
) -> int:
    """Set a new password and revoke every session (a changed password means
    the old one may be known). Gives how many sessions were revoked."""
    problem = check_new_password(new_password)
    if problem:
        raise InvalidArgument(problem)
    pw_hash = await passwords.hash_async(new_password)
    now = clock.now()
    count = await store.change_password(user_id, pw_hash, now, now + policy.revocation_ttl)
    await store.audit(
        "password_changed", now, subject=user_id, outcome=Outcome.OK, actor=actor, call=call, detail=f"sessions={count}"
    )
    return count


async def reset_mfa(
    store: Store, clock: Clock, policy: Policy, user_id: str, actor: str = "", call: CallInfo | None = None
) -> int:
    """Remove the second factor (a lost phone) and revoke every session."""
    now = clock.now()
    count = await store.reset_mfa(user_id, now, now + policy.revocation_ttl)
    await store.audit(
        "mfa_reset", now, subject=user_id, outcome=Outcome.OK, actor=actor, call=call, detail=f"sessions={count}"
    )
    return count


async def set_disabled(
    store: Store, clock: Clock, policy: Policy, user_id: str, disabled: bool, actor: str, call: CallInfo | None = None
) -> int:
    """Disable (every session revoked at once; login and refresh refused) or
    enable again (old sessions stay revoked). Gives the sessions revoked."""
    now = clock.now()
    count = await store.set_user_disabled(user_id, disabled, now, now + policy.revocation_ttl)
    if count is None:
        raise NotFound("no such user")
    event = "user_disabled" if disabled else "user_enabled"
    await store.audit(
        event, now, subject=user_id, outcome=Outcome.OK, actor=actor, call=call, detail=f"sessions={count}"
    )
    return count


async def delete_user(
    store: Store, clock: Clock, policy: Policy, user_id: str, actor: str, call: CallInfo | None = None
) -> int:
    """Delete the user with its sessions and MFA; its live tokens are revoked."""
    now = clock.now()
    count = await store.delete_user(user_id, now, now + policy.revocation_ttl)
    if count is None:
        raise NotFound("no such user")
    await store.audit(
        "user_deleted", now, subject=user_id, outcome=Outcome.OK, actor=actor, call=call, detail=f"sessions={count}"
    )
    return count
