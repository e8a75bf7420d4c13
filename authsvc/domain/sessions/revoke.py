"""Revoke a token (RFC 7009), a session, or every session of a subject."""

from __future__ import annotations

import uuid

from authsvc.domain import validate
from authsvc.domain.admin.authz import admit
from authsvc.domain.audit.record import AuditEvent, Outcome
from authsvc.domain.deps import Deps
from authsvc.domain.identity import credentials
from authsvc.domain.identity.bearer import authenticate
from authsvc.domain.models import CallInfo, Session
from authsvc.errors import InvalidArgument, PermissionDenied
from authsvc_client import TokenRejected
from authsvc_client._verify import read_access_token


async def revoke_token(deps: Deps, token: str, call: CallInfo) -> int:
    """Possession is the proof (RFC 7009 section 2.1). An invalid, unknown or
    already revoked token is not an error: the answer is 0 (section 2.2)."""
    validate.text(token, "token", validate.MAX_TOKEN)
    now = deps.clock.now()
    if token.count(".") in (2, 4):  # a JWS, or a nested JWT
        try:
            claims = read_access_token(token, deps.live.keyring.verification_keys, deps.live.encryptor.decryption_keys)
        except TokenRejected:
            return 0
        if claims.iss != deps.policy.issuer or claims.exp + deps.policy.leeway < now:
            return 0
        # Whoever presents a token may revoke it (RFC 7009): the actor is its holder.
        event = AuditEvent.of(
            "revoke_token", now, call=call, outcome=Outcome.OK, actor="holder", subject=claims.sub,
            client_id=claims.client_id, session_id=claims.sid, detail=f"jti={claims.jti}",
        )  # fmt: skip
        entry = await deps.store.revoke_jti(claims.jti, now, claims.exp + deps.policy.leeway + 1, audit=event)
        deps.live.apply_local([entry])  # this replica rejects it at once, without reading the log back
        return 1
    parts = credentials.split_refresh_token(token)
    if parts is None:
        return 0
    found = await deps.store.refresh_token(parts[0])
    if found is None or not credentials.matches(parts[1], found[0].secret_hash):
        return 0
    session = found[1]
    # A refresh token stands for its session: revoking it ends the session.
    event = AuditEvent.of(
        "revoke_session", now, call=call, outcome=Outcome.OK, actor="holder", subject=session.subject,
        session_id=session.id, detail="by refresh token",
    )  # fmt: skip
    revoked = await deps.store.revoke_session(session.id, now, now + deps.policy.revocation_ttl, audit=event)
    await deps.live.sync_revocations(deps.store)
    return int(revoked)


def session_uuid(session_id: str) -> str:
    validate.text(session_id, "session_id")
    try:
        return str(uuid.UUID(session_id))
    except ValueError as exc:
        raise InvalidArgument("session_id is malformed") from exc


async def revoke_session(deps: Deps, session_id: str, bearer: str | None, call: CallInfo) -> int:
    sid = session_uuid(session_id)
    caller = authenticate(deps, bearer, call)
    session = await deps.store.session(sid)
    own = session is not None and session.subject == caller.sub
    if not own:
        if deps.policy.admin_scope not in caller.scope:
            # The same answer for someone else's session and for none at all.
            raise PermissionDenied()
        await admit(deps, caller, call, "Revoke", sid)  # the admin rule: scope and a recent login
    return await end_session(
        deps, session, call, actor=caller.sub, client_id=caller.client_id, detail="" if own else "as admin"
    )


async def end_session(
    deps: Deps, session: Session | None, call: CallInfo, *, actor: str, client_id: str = "", detail: str = ""
) -> int:
    """Revoke ``session`` for ``actor``, who was authorized by the caller."""
    if session is None:
        return 0
    now = deps.clock.now()
    event = AuditEvent.of(
        "revoke_session", now, call=call, outcome=Outcome.OK, actor=actor, subject=session.subject,
        client_id=client_id, session_id=session.id, detail=detail,
    )  # fmt: skip
    revoked = await deps.store.revoke_session(session.id, now, now + deps.policy.revocation_ttl, audit=event)
    await deps.live.sync_revocations(deps.store)
    return int(revoked)


async def revoke_subject(deps: Deps, subject: str, bearer: str | None, call: CallInfo) -> int:
    validate.text(subject, "subject")
    caller = authenticate(deps, bearer, call)
    if caller.sub != subject:
        if deps.policy.admin_scope not in caller.scope:
            raise PermissionDenied()
        await admit(deps, caller, call, "Revoke", subject)  # the admin rule: scope and a recent login
    detail = "as admin" if caller.sub != subject else ""
    return await end_subject(deps, subject, call, actor=caller.sub, client_id=caller.client_id, detail=detail)


async def end_subject(
    deps: Deps, subject: str, call: CallInfo, *, actor: str, client_id: str = "", detail: str = ""
) -> int:
    """Revoke every session and token of ``subject`` for ``actor``, who was
    authorized by the caller."""
    now = deps.clock.now()
    event = AuditEvent.of(
        "revoke_subject", now, call=call, outcome=Outcome.OK, actor=actor, subject=subject,
        client_id=client_id, detail=detail,
    )  # fmt: skip
    count = await deps.store.revoke_subject(subject, now, now + deps.policy.revocation_ttl, audit=event)
    await deps.live.sync_revocations(deps.store)
    return count
