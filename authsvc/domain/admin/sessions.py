"""Sessions, as an admin sees them: any subject's, listed and revoked with
the same use cases as the self-service calls (sessions/listing.py, revoke.py)."""

from __future__ import annotations

from authsvc.domain import validate
from authsvc.domain.admin.authz import authorize
from authsvc.domain.deps import Deps
from authsvc.domain.models import CallInfo, Session
from authsvc.domain.sessions import listing, revoke
from authsvc.errors import InvalidArgument


async def list_sessions(
    deps: Deps, bearer: str | None, call: CallInfo, subject: str, include_revoked: bool
) -> list[Session]:
    validate.text(subject, "subject")
    await authorize(deps, bearer, call, "ListSessions", subject)
    return await listing.sessions_of(deps, subject, include_revoked)


async def revoke_sessions(deps: Deps, bearer: str | None, call: CallInfo, session_id: str, subject: str) -> int:
    """One session, or every session and token of a subject."""
    if session_id:
        sid = revoke.session_uuid(session_id)
        actor = await authorize(deps, bearer, call, "RevokeSessions", sid)
        session = await deps.store.session(sid)
        return await revoke.end_session(
            deps, session, call, actor=actor.id, client_id=actor.client_id, detail="as admin"
        )
    if subject:
        validate.text(subject, "subject")
        actor = await authorize(deps, bearer, call, "RevokeSessions", subject)
        return await revoke.end_subject(
            deps, subject, call, actor=actor.id, client_id=actor.client_id, detail="as admin"
        )
    raise InvalidArgument("a session_id or subject is required")
