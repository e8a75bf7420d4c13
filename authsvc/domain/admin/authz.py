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

from authsvc.domain.audit.record import Outcome
from authsvc.domain.deps import Deps
from authsvc.domain.identity.bearer import authenticate
from authsvc.domain.models import CallInfo
from authsvc.errors import AuthError, PermissionDenied, ReauthRequired
from authsvc_client import AccessClaims


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made an admin call, as the audit trail names actors."""

    id: str  # the token's subject: a user id, or a client id
    client_id: str  # the client the call came through
    kind: str  # user | client


async def authorize(deps: Deps, bearer: str | None, call: CallInfo, action: str, target: str = "") -> Actor:
    """The caller of admin ``action`` (on ``target``, for the record), or an
    AuthError. Every admin call leaves an audit event with its actor: granted
    (``admin_call``) or not (``admin_denied``); what a call changes is audited
    as well, by the use case that changes it."""
    try:
        claims = authenticate(deps, bearer, call)
    except AuthError as exc:
        await deps.store.audit(
            "admin_denied", deps.clock.now(), outcome=Outcome.FAILED, subject=target, call=call,
            detail=f"action={action} reason={exc.code.value}",
        )  # fmt: skip
        raise
    return await admit(deps, claims, call, action, target)


async def admit(deps: Deps, claims: AccessClaims, call: CallInfo, action: str, target: str = "") -> Actor:
    """The admin rule, on the claims of a token already verified for authsvc
    alone: the admin scope, and a recent login. Also what AuthService's
    Revoke and ListSessions apply when a caller acts on someone else's."""
    now = deps.clock.now()
    # A user's token carries its session; a client's has none (sub is the client id).
    actor = Actor(claims.sub, claims.client_id, "user" if claims.sid else "client")

    async def denied(outcome: Outcome, reason: str) -> None:
        await deps.store.audit(
            "admin_denied", now, outcome=outcome, actor=actor.id, client_id=actor.client_id, subject=target,
            call=call, detail=f"action={action} reason={reason}",
        )  # fmt: skip

    if deps.policy.admin_scope not in claims.scope:
        await denied(Outcome.DENIED, "scope")
        raise PermissionDenied("the admin scope is required")
    if not claims.auth_time or now - claims.auth_time > deps.policy.admin_recent_auth:
        await denied(Outcome.DENIED, "login too old")
        raise ReauthRequired("recent authentication required")
    await deps.store.audit(
        "admin_call", now, outcome=Outcome.OK, actor=actor.id, client_id=actor.client_id, subject=target,
        call=call, detail=f"action={action}",
    )  # fmt: skip
    return actor
