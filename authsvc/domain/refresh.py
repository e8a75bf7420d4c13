"""Refresh: rotate a refresh token, detecting reuse of a spent one."""

from __future__ import annotations

from collections.abc import Sequence

from authsvc.errors import InvalidCredentials, PermissionDenied

from . import credentials, validate
from .deps import Deps
from .grants import narrow, refresh_record, session_pair
from .models import CallInfo, RefreshTokenRecord, Session, TokenPair
from .ports import RotateDecision


async def refresh(deps: Deps, token: str, scopes: Sequence[str], call: CallInfo) -> TokenPair:
    validate.text(token, "refresh_token", validate.MAX_TOKEN)
    scopes = validate.names(scopes, "scope")
    parts = credentials.split_refresh_token(token)
    if parts is None:
        raise InvalidCredentials()
    token_id, secret = parts
    now = deps.clock.now()
    minted: list[str] = []

    def decide(record: RefreshTokenRecord, session: Session) -> RotateDecision:
        """Runs inside the store's transaction, with the token and session locked."""
        if not credentials.matches(secret, record.secret_hash):
            return RotateDecision(now, "rejected", reason="bad secret")
        if session.revoked_at is not None:
            return RotateDecision(now, "rejected", reason="session revoked")
        if record.used_at is not None:
            # A spent token came back: either the client or a thief holds a
            # copy. Kill the whole session (theft detection).
            until = now + deps.policy.revocation_ttl
            return RotateDecision(now, "reused", revoke_session_until=until, session=session)
        if now >= record.expires_at or now >= session.expires_at:
            return RotateDecision(now, "rejected", reason="expired")
        if not set(scopes) <= set(record.scopes):
            return RotateDecision(now, "rejected", reason="scope")
        new_record, new_token = refresh_record(deps, session, record.scopes, now)
        minted.append(new_token)
        return RotateDecision(
            now, "rotated", new_token=new_record, peer=call.peer, user_agent=call.user_agent, session=session
        )

    decision = await deps.store.rotate_refresh(token_id, decide)
    if decision is None:
        raise InvalidCredentials()
    if decision.outcome == "reused" and decision.session is not None:
        await deps.live.sync_revocations(deps.store)
        await deps.store.audit(
            "refresh_reuse_detected", now, subject=decision.session.subject,
            session_id=decision.session.id, peer=call.peer,
        )  # fmt: skip
        raise InvalidCredentials()
    if decision.outcome != "rotated" or decision.session is None or decision.new_token is None:
        if decision.reason == "scope":
            raise PermissionDenied("scope not allowed")
        raise InvalidCredentials()
    session = decision.session
    granted = narrow(scopes, decision.new_token.scopes, "scope")
    await deps.store.audit("refresh", now, subject=session.subject, session_id=session.id, peer=call.peer)
    return session_pair(deps, session, minted[0], granted, call)
