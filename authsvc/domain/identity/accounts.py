"""Operator actions on accounts that must end every session they had."""

from __future__ import annotations

from authsvc.domain.clock import Clock
from authsvc.domain.identity.passwords import Passwords, check_new_password
from authsvc.domain.policy import Policy
from authsvc.domain.ports import Store
from authsvc.errors import InvalidArgument


async def change_password(
    store: Store,
    passwords: Passwords,
    clock: Clock,
    policy: Policy,
    user_id: str,
    new_password: str,
    *,
    actor: str = "",
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
        "password_changed", now, outcome="ok", actor=actor, subject=user_id, detail=f"sessions revoked={count}"
    )
    return count


async def reset_mfa(store: Store, clock: Clock, policy: Policy, user_id: str, *, actor: str = "") -> int:
    """Remove the second factor (a lost phone) and revoke every session."""
    now = clock.now()
    count = await store.reset_mfa(user_id, now, now + policy.revocation_ttl)
    await store.audit("mfa_reset", now, outcome="ok", actor=actor, subject=user_id, detail=f"sessions revoked={count}")
    return count
