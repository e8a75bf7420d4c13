"""Refresh: rotate a refresh token under the session's limits, detecting reuse.

The whole verdict is taken inside the store's transaction, with the token and
its session row-locked, so two uses of one token, or a refresh racing a
revoke, are settled by the database and never both win.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from authsvc.domain import security, validate
from authsvc.domain.audit.record import AuditEvent, Outcome
from authsvc.domain.deps import Deps
from authsvc.domain.identity import credentials
from authsvc.domain.models import CallInfo, RefreshTokenRecord, Session, TokenPair
from authsvc.domain.ports import RotateDecision
from authsvc.domain.sessions.grants import refresh_record, session_pair
from authsvc.domain.tokens.kek import aad
from authsvc.errors import InvalidCredentials, PermissionDenied, ReauthRequired, Throttled


def _grace_aad(token_id: str) -> bytes:
    return aad("refresh-grace", token_id)


def _seal_pair(deps: Deps, token_id: str, pair: TokenPair) -> tuple[str, bytes]:
    body = json.dumps(
        [pair.access_token, pair.expires_in, list(pair.scopes), pair.refresh_token, pair.session_id]
    ).encode()
    return deps.kek.seal(body, _grace_aad(token_id))


def _open_pair(deps: Deps, record: RefreshTokenRecord) -> TokenPair:
    assert record.grace_kek_id is not None and record.grace_sealed is not None
    access, expires_in, scopes, refresh, sid = json.loads(
        deps.kek.open(record.grace_kek_id, record.grace_sealed, _grace_aad(record.id))
    )
    return TokenPair(access, expires_in, tuple(scopes), refresh, sid)


async def refresh(deps: Deps, token: str, scopes: Sequence[str], call: CallInfo) -> TokenPair:
    validate.text(token, "refresh_token", validate.MAX_TOKEN)
    scopes = validate.names(scopes, "scope")
    parts = credentials.split_refresh_token(token)
    if parts is None:
        raise InvalidCredentials()
    token_id, secret = parts
    now = deps.clock.now()
    policy = deps.policy
    out: list[TokenPair] = []

    def decide(record: RefreshTokenRecord, session: Session, owner_disabled: bool) -> RotateDecision:
        """Runs inside the store's transaction, with the token and session
        locked; ``owner_disabled``: the session's user is disabled."""
        if not credentials.matches(secret, record.secret_hash):
            return RotateDecision(now, "rejected", reason="bad secret")
        if owner_disabled:
            # Disabling revokes every session too; this holds even for one
            # that somehow escaped (an enable does not bring sessions back).
            return RotateDecision(now, "rejected", reason="user disabled")
        if session.revoked_at is not None:
            return RotateDecision(now, "rejected", reason="session revoked")
        if session.cert_thumbprint and session.cert_thumbprint != call.cert_thumbprint:
            # A bound refresh token without its certificate: stolen, or the
            # wrong connection. Refused, but not reuse: the holder lives on.
            return RotateDecision(now, "rejected", reason="certificate")
        if record.used_at is not None:
            if (
                policy.refresh_grace > 0
                and now - record.used_at <= policy.refresh_grace
                and record.grace_sealed
                and record.successor_used_at is None
            ):
                # The client lost our answer and retried: the same pair again.
                # Only while that pair is unspent: once its refresh token was
                # used, the answer was not lost, and a copy of the old token
                # is a thief's (else each hop's window would let it walk the
                # chain to the live pair).
                out.append(_open_pair(deps, record))
                return RotateDecision(
                    now, "replayed", session=session, peer=call.peer,
                    audit_event=_event("refresh_grace_replay", Outcome.OK, session),
                )  # fmt: skip
            # A spent token came back: the client or a thief holds a copy.
            # Kill the whole session (theft detection).
            return RotateDecision(
                now, "reused", revoke_session_until=now + policy.revocation_ttl, session=session,
                peer=call.peer, audit_event=_event("refresh_reuse_detected", Outcome.DETECTED, session),
            )  # fmt: skip
        if now >= record.expires_at or now >= session.expires_at:
            return RotateDecision(now, "rejected", reason="expired")
        if now - session.auth_time >= policy.reauth_age or session.refresh_count >= policy.refresh_max_count:
            return RotateDecision(now, "rejected", reason="reauth")
        # Stored times have microsecond precision; a millisecond of slack keeps
        # "exactly the interval later" from reading as too soon.
        # Between refreshes only: a refresh right after login (to narrow the
        # scopes, say) is normal; a storm of refreshes is not.
        since = now - session.last_refresh_at if session.last_refresh_at is not None else float("inf")
        if since + 0.001 < policy.refresh_min_interval:
            return RotateDecision(now, "rejected", reason="too soon", retry_after=policy.refresh_min_interval - since)
        if not set(scopes) <= set(record.scopes):
            return RotateDecision(now, "rejected", reason="scope")
        new_record, new_token = refresh_record(deps, session, record.scopes, now)
        pair = session_pair(deps, session, new_token, scopes or record.scopes)
        out.append(pair)
        sealed = _seal_pair(deps, token_id, pair) if policy.refresh_grace > 0 else None
        return RotateDecision(
            now, "rotated", new_token=new_record, peer=call.peer, user_agent=call.user_agent,
            session=session, grace_sealed=sealed, audit_event=_event("refresh", Outcome.OK, session),
        )  # fmt: skip

    def _event(name: str, outcome: Outcome, session: Session) -> AuditEvent:
        return AuditEvent.of(
            name, now, call=call, outcome=outcome, actor=session.subject, subject=session.subject,
            session_id=session.id,
        )  # fmt: skip

    decision = await deps.store.rotate_refresh(token_id, decide)
    if decision is None:
        raise InvalidCredentials()
    if decision.outcome == "reused":
        assert decision.session is not None
        security.refresh_reuse(decision.session.subject, decision.session.id, call)
        await deps.live.sync_revocations(deps.store)  # this replica rejects the session's tokens at once
        raise InvalidCredentials()
    if decision.outcome in ("rotated", "replayed") and out:
        return out[0]
    if decision.reason == "scope":
        raise PermissionDenied("scope not allowed")
    if decision.reason == "reauth":
        raise ReauthRequired("re-authentication required: log in again")
    if decision.reason == "too soon":
        raise Throttled(decision.retry_after, "refreshed too soon, retry later")
    raise InvalidCredentials()
