"""Choosing what a token carries, and minting token pairs for sessions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from authsvc.domain.deps import Deps
from authsvc.domain.identity import credentials
from authsvc.domain.models import CallInfo, RefreshTokenRecord, Session, TokenPair
from authsvc.domain.tokens.mint import Grant, mint_access_token
from authsvc.errors import PermissionDenied

MAX_LIST_ITEMS = 32
MAX_ITEM_LENGTH = 256


def narrow(requested: Sequence[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """The requested subset of ``allowed``; all of it when nothing is requested.
    Asking for more than is allowed is refused, never silently trimmed."""
    if not requested:
        return tuple(dict.fromkeys(allowed))
    wanted = tuple(dict.fromkeys(requested))
    if not set(wanted) <= set(allowed):
        raise PermissionDenied(f"{what} not allowed")
    return wanted


def access_token(deps: Deps, grant: Grant) -> tuple[str, str, int]:
    live = deps.live
    token, jti, exp = mint_access_token(
        grant,
        key=live.keyring.signer,
        issuer=deps.policy.issuer,
        now=deps.clock.now(),
        ttl=deps.policy.access_ttl,
    )
    if deps.policy.encrypt_tokens or live.encryptor.must_encrypt(grant.audiences):
        token = live.encryptor.encrypt(token, grant.audiences)
    return token, jti, exp


def new_session(
    deps: Deps,
    *,
    user_id: str,
    audiences: Sequence[str],
    scopes: Sequence[str],
    amr: Sequence[str],
    auth_time: float,
    call: CallInfo,
) -> tuple[Session, RefreshTokenRecord, str]:
    """A session row, its first refresh token record, and the token itself."""
    now = deps.clock.now()
    session = Session(
        id=str(uuid.uuid4()),
        user_id=user_id,
        subject=user_id,
        audiences=tuple(audiences),
        scopes=tuple(scopes),
        amr=tuple(amr),
        acr="aal2" if len(amr) > 1 else "aal1",
        auth_time=auth_time,
        created_at=now,
        expires_at=now + deps.policy.session_max_age,
        last_refresh_at=None,
        refresh_count=0,
        peer=call.peer,
        user_agent=call.user_agent,
        revoked_at=None,
        cert_thumbprint=call.cert_thumbprint if deps.policy.bind_to_cert else "",
    )
    record, token = refresh_record(deps, session, scopes, now)
    return session, record, token


def refresh_record(
    deps: Deps, session: Session, scopes: Sequence[str], now: float
) -> tuple[RefreshTokenRecord, str]:
    token, token_id, secret = credentials.new_refresh_token()
    record = RefreshTokenRecord(
        id=token_id,
        session_id=session.id,
        secret_hash=credentials.digest(secret),
        scopes=tuple(scopes),
        created_at=now,
        expires_at=min(now + deps.policy.refresh_idle_ttl, session.expires_at),
    )
    return record, token


def session_pair(deps: Deps, session: Session, refresh_token: str, scopes: Sequence[str]) -> TokenPair:
    """Access token for the session (bound to the session's certificate, if
    any) plus the given refresh token."""
    token, _, exp = access_token(
        deps,
        Grant(
            subject=session.subject,
            audiences=session.audiences,
            scopes=scopes,
            client_id=deps.policy.self_audience,
            auth_time=session.auth_time,
            amr=session.amr,
            acr=session.acr,
            session_id=session.id,
            cert_thumbprint=session.cert_thumbprint,
        ),
    )
    return TokenPair(
        access_token=token,
        expires_in=exp - int(deps.clock.now()),
        scopes=tuple(scopes),
        refresh_token=refresh_token,
        session_id=session.id,
    )
