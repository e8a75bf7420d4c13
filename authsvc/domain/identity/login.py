"""Issue and ChallengeMFA: proving who you are and getting tokens."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from authsvc.domain import security, validate
from authsvc.domain.audit.record import AuditEvent, Outcome
from authsvc.domain.deps import Deps
from authsvc.domain.identity import attempts, credentials, mfa
from authsvc.domain.models import CallInfo, Challenge, Client, MfaChallengeIssued, TokenPair, User
from authsvc.domain.sessions.grants import access_token, narrow, new_session, session_pair
from authsvc.domain.tokens.kek import aad
from authsvc.domain.tokens.mint import Grant
from authsvc.errors import InvalidCredentials, PermissionDenied

AMR_PASSWORD = ("pwd",)
AMR_TOTP = ("pwd", "otp")
AMR_RECOVERY = ("pwd", "mfa")


async def issue_with_password(
    deps: Deps,
    username: str,
    password: str,
    audiences: Sequence[str],
    scopes: Sequence[str],
    call: CallInfo,
) -> TokenPair | MfaChallengeIssued:
    validate.text(username, "username")
    validate.text(password, "password", validate.MAX_SECRET)
    audiences, scopes = validate.names(audiences, "audience"), validate.names(scopes, "scope")
    account, peer = f"pwd-account:{username}", f"pwd-peer:{attempts.peer_key(call.peer)}"
    # A successful login counts against its peer too, so the peer limit must
    # allow for the legitimate logins of everyone behind one address.
    # Keyed by the name given, not the user: unknown names throttle alike.
    await attempts.reserve(deps, [(account, deps.policy.account_limit), (peer, deps.policy.peer_limit)], call)
    now = deps.clock.now()
    user = await deps.store.user_by_name(username)
    # Always one argon2 check, against a dummy hash for unknown users: the
    # same answer in about the same time (no user enumeration).
    ok, rehash = await deps.passwords.check_async(user.password_hash if user else None, password)
    if user is None or not ok or user.disabled:
        # The name given is not recorded: it may be a password typed in the wrong field.
        why = "unknown user" if user is None else "disabled" if user.disabled else "wrong password"
        await deps.store.audit(
            "login_failed", now, outcome=Outcome.FAILED, actor=user.id if user else "",
            subject=user.id if user else "", call=call, detail=f"method=password reason={why}",
        )  # fmt: skip
        security.login_failed("password", user.id if user else "", why, call)
        raise InvalidCredentials()
    # The right password clears the account's counter; the peer's attempt is
    # not given back: else one valid account of the attacker's, logged into
    # between guesses, would keep the peer counter flat. On the common path the
    # clearing rides in the statement that opens the session (one round trip
    # fewer), the next thing this login awaits. Every other way clears it at
    # once, before a rehash, which takes a hash's time: a call that ends
    # meanwhile must not leave the right password counted as a guess.
    try:
        granted_aud = _user_grant(deps, user, audiences)
        granted_scopes = narrow(scopes, user.scopes, "scope")
    except PermissionDenied:
        await deps.store.release_throttles(reset=[account])
        raise
    if rehash or user.mfa_enrolled:
        await deps.store.release_throttles(reset=[account])
    if rehash:
        await deps.store.set_password_hash(user.id, await deps.passwords.hash_async(password))
    if user.mfa_enrolled:
        challenge_id = credentials.new_challenge_id()
        expires_at = now + deps.policy.mfa_challenge_ttl
        challenge = Challenge(
            id_hash=credentials.digest(challenge_id),
            user_id=user.id,
            audiences=granted_aud,
            scopes=granted_scopes,
            auth_time=now,
            expires_at=expires_at,
            attempts=0,
        )
        await deps.store.create_challenge(challenge, now)
        await deps.store.audit(
            "login_password_ok_mfa_required", now, outcome=Outcome.OK, actor=user.id, subject=user.id, call=call
        )
        return MfaChallengeIssued(challenge_id, ("totp", "recovery_code"), expires_at)
    session, record, refresh = new_session(
        deps, user_id=user.id, audiences=granted_aud, scopes=granted_scopes,
        amr=AMR_PASSWORD, auth_time=now, call=call,
    )  # fmt: skip
    event = AuditEvent.of(
        "login_ok", now, call=call, outcome=Outcome.OK, actor=user.id, subject=user.id,
        session_id=session.id, detail="method=password",
    )  # fmt: skip
    if not await deps.store.create_session(session, record, audit=event, reset_throttles=[account]):
        raise InvalidCredentials()  # every session of the user was revoked while this login ran
    return session_pair(deps, session, refresh, granted_scopes)


def _user_grant(deps: Deps, user: User, requested: Sequence[str]) -> tuple[str, ...]:
    """authsvc's own audience only when asked for, and then alone: a token a
    downstream service receives must never work at authsvc's self-service
    calls (it could enrol MFA or revoke as the user: a confused deputy)."""
    own = deps.policy.self_audience
    if own in requested:
        if len(set(requested)) > 1:
            raise PermissionDenied(f"audience {own} cannot be combined with others")
        return (own,)
    if not requested and not user.audiences:
        return (own,)  # nothing else to be for: a token for managing the account
    return narrow(requested, user.audiences, "audience")


async def issue_with_client(
    deps: Deps,
    client_id: str,
    client_secret: str,
    audiences: Sequence[str],
    scopes: Sequence[str],
    call: CallInfo,
) -> TokenPair:
    """OAuth client credentials: an access token only, no session, no refresh
    token. A client registered for mTLS (RFC 8705 section 2) proves itself with
    its certificate and sends no secret."""
    audiences, scopes = validate.names(audiences, "audience"), validate.names(scopes, "scope")
    client = await authenticate_client(deps, client_id, client_secret, call)
    now = deps.clock.now()
    method = _auth_method(client)
    granted_aud = narrow(audiences, client.audiences, "audience")
    granted_scopes = narrow(scopes, client.scopes, "scope")
    token, _, exp = access_token(
        deps,
        Grant(
            subject=client.id,
            audiences=granted_aud,
            scopes=granted_scopes,
            client_id=client.id,
            auth_time=now,
            amr=("mtls",) if client.tls_san_uri or client.tls_thumbprint else (),
            acr="",
            cert_thumbprint=call.cert_thumbprint if deps.policy.bind_to_cert else "",
        ),
    )
    await deps.store.audit(
        "client_login_ok", now, outcome=Outcome.OK, actor=client.id, subject=client.id, client_id=client.id,
        call=call, detail=f"method={method}",
    )  # fmt: skip
    return TokenPair(access_token=token, expires_in=exp - int(now), scopes=granted_scopes)


async def authenticate_client(deps: Deps, client_id: str, client_secret: str, call: CallInfo) -> Client:
    """The client, if it proved itself: its secret, or for a client registered
    for mTLS (RFC 8705 section 2) its certificate and no secret. What the
    client-credentials grant and every endpoint that takes client
    authentication (introspection, revocation) check."""
    validate.text(client_id, "client_id")
    if client_secret:
        validate.text(client_secret, "client_secret", validate.MAX_SECRET)
    client = await deps.store.client_by_id(client_id)
    if client is not None and (client.tls_san_uri or client.tls_thumbprint):
        ok = not client_secret and _certificate_matches(client, call)
    else:
        ok = bool(client_secret) and _secret_matches(client, client_secret, deps.clock.now())
    method = _auth_method(client)
    if client is None or not ok or client.disabled:
        why = "unknown client" if client is None else "disabled" if client.disabled else f"bad {method}"
        known = client_id if client else ""
        await deps.store.audit(
            "client_auth_failed", deps.clock.now(), outcome=Outcome.FAILED, actor=known, subject=known,
            client_id=known, call=call, detail=f"method={method} reason={why}",
        )  # fmt: skip
        security.login_failed(method, known, why, call)
        raise InvalidCredentials()
    return client


def _auth_method(client: Client | None) -> str:
    return "mtls" if client is not None and (client.tls_san_uri or client.tls_thumbprint) else "secret"


def _secret_matches(client: Client | None, secret: str, now: float) -> bool:
    """The current secret, or the one it replaced while the rotation's
    overlap lasts. Both compared every time: no timing tells which matched."""
    current = credentials.matches(secret, client.secret_hash if client else b"\0" * 32)
    previous = client.previous_secret_hash if client else None
    expires = client.previous_secret_expires_at if client else None
    old = credentials.matches(secret, previous or b"\0" * 32)
    return current or (previous is not None and expires is not None and now < expires and old)


def _certificate_matches(client: Client, call: CallInfo) -> bool:
    if not call.cert_thumbprint:
        return False
    if client.tls_thumbprint:
        return hmac.compare_digest(client.tls_thumbprint, call.cert_thumbprint)
    return client.tls_san_uri in call.cert_san_uris


async def challenge_mfa(deps: Deps, challenge_id: str, totp_code: str, recovery_code: str, call: CallInfo) -> TokenPair:
    validate.text(challenge_id, "challenge_id")
    if not totp_code and not recovery_code:
        validate.text("", "code")
    validate.text(totp_code or recovery_code, "code", 64)
    now = deps.clock.now()
    id_hash = credentials.digest(challenge_id)
    challenge = await deps.store.attempt_challenge(id_hash, now, deps.policy.mfa_max_attempts)
    if challenge is None:
        raise InvalidCredentials()
    # Per user as well as per challenge: new challenges must not mean new guesses.
    mfa_key = f"mfa:{challenge.user_id}"
    await attempts.reserve(deps, [(mfa_key, deps.policy.mfa_limit)], call)
    enrolment = await deps.store.totp(challenge.user_id)
    if enrolment is None or not enrolment.confirmed:
        raise InvalidCredentials()
    step: int | None = None
    recovery_hash: bytes | None = None
    if totp_code:
        secret = deps.kek.open(enrolment.kek_id, enrolment.secret_sealed, mfa_aad(challenge.user_id))
        step = mfa.matching_step(secret.decode("ascii"), totp_code, now, enrolment.last_used_step)
        amr = AMR_TOTP
    else:
        recovery_hash = credentials.digest(credentials.normalise_recovery_code(recovery_code))
        amr = AMR_RECOVERY
    if totp_code and step is None:
        await _mfa_failed(deps, now, challenge.user_id, call, "wrong code")
        raise InvalidCredentials()
    session, record, refresh = new_session(
        deps, user_id=challenge.user_id, audiences=challenge.audiences, scopes=challenge.scopes,
        amr=amr, auth_time=challenge.auth_time, call=call,
    )  # fmt: skip
    done = await deps.store.complete_challenge(
        id_hash, totp_step=step, recovery_hash=recovery_hash, session=session, token=record, now=now
    )
    if not done:
        await _mfa_failed(deps, now, challenge.user_id, call, "code already used or challenge spent")
        raise InvalidCredentials()
    await deps.store.release_throttle(mfa_key, reset=True)
    await deps.store.audit(
        "mfa_ok", now, outcome=Outcome.OK, actor=challenge.user_id, subject=challenge.user_id,
        session_id=session.id, call=call, detail=f"method={'totp' if totp_code else 'recovery_code'}",
    )  # fmt: skip
    return session_pair(deps, session, refresh, challenge.scopes)


async def _mfa_failed(deps: Deps, now: float, user_id: str, call: CallInfo, why: str) -> None:
    await deps.store.audit(
        "mfa_failed", now, outcome=Outcome.FAILED, actor=user_id, subject=user_id, call=call, detail=f"reason={why}"
    )
    security.login_failed("mfa", user_id, why, call)


def mfa_aad(user_id: str) -> bytes:
    """Binds a sealed TOTP secret to its user's row."""
    return aad("totp", user_id)
