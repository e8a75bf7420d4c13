"""Who may call the AdminService: the one authorization rule for admin calls.

The caller presents an access token for authsvc's own audience (and no
other: see bearer.py) carrying the admin scope, and is either
- a service client (client credentials; over mTLS its token is bound to the
  certificate, so a copied token is useless elsewhere), or
- a user whose login is recent (``Policy.admin_recent_auth``): an admin
  session left open on a laptop must not stay an admin for a day.
A client's token counts from its issue, so it is always recent.
"""

from __future__ import annotations

from dataclasses import dataclass

from authsvc.domain.deps import Deps
from authsvc.domain.identity.bearer import authenticate
from authsvc.domain.models import CallInfo
from authsvc.errors import AuthError, PermissionDenied


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made an admin call, as the audit log names it."""

    kind: str  # user | client | operator (the CLI, on the database)
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


def operator(name: str) -> Actor:
    """The CLI's actor: someone with the database's credentials."""
    return Actor("operator", name or "unknown")


async def authorize(deps: Deps, bearer: str | None, call: CallInfo, action: str, target: str = "") -> Actor:
    """The caller of admin ``action`` (on ``target``, for the record), or an
    AuthError. Every admin call leaves an audit row with its actor: granted
    (``admin_call``) or not (``admin_denied``); what a call changes is audited
    as well, by the use case that changes it."""
    now = deps.clock.now()
    try:
        claims = authenticate(deps, bearer, call, max_auth_age=deps.policy.admin_recent_auth)
    except AuthError as exc:
        detail = f"action={action} reason={exc.code.value}"
        await deps.store.audit("admin_denied", now, subject=target, peer=call.peer, detail=detail)
        raise
    # A user's token carries its session; a client's has none (sub is the client id).
    actor = Actor("user", claims.sub) if claims.sid else Actor("client", claims.sub)
    if deps.policy.admin_scope not in claims.scope:
        detail = f"actor={actor} action={action} reason=scope"
        await deps.store.audit("admin_denied", now, subject=target, peer=call.peer, detail=detail)
        raise PermissionDenied("the admin scope is required")
    await deps.store.audit("admin_call", now, subject=target, peer=call.peer, detail=f"actor={actor} action={action}")
    return actor
