"""ListSessions: what a user (or an admin) can see of sessions."""

from __future__ import annotations

from authsvc.domain import validate
from authsvc.domain.admin.authz import admit
from authsvc.domain.deps import Deps
from authsvc.domain.identity.bearer import authenticate
from authsvc.domain.models import CallInfo, Session
from authsvc.errors import PermissionDenied


async def list_sessions(
    deps: Deps, bearer: str | None, subject: str, include_revoked: bool, call: CallInfo
) -> list[Session]:
    caller = authenticate(deps, bearer, call)
    if subject:
        validate.text(subject, "subject")
    target = subject or caller.sub
    if target != caller.sub:
        if deps.policy.admin_scope not in caller.scope:
            raise PermissionDenied()
        await admit(deps, caller, call, "ListSessions", target)  # the admin rule: scope and a recent login
    return await sessions_of(deps, target, include_revoked)


async def sessions_of(deps: Deps, subject: str, include_revoked: bool) -> list[Session]:
    """A subject's sessions, oldest first (its caller is authorized)."""
    return await deps.store.sessions_of(subject, include_revoked)
