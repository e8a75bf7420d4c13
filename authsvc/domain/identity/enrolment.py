"""EnrollMFA and ConfirmMFA: adding TOTP to an account; and the same for an
operator enrolling a user at a terminal (``authsvc user enroll-mfa``)."""

from __future__ import annotations

from dataclasses import dataclass

from authsvc.domain import validate
from authsvc.domain.audit.record import Outcome
from authsvc.domain.clock import Clock
from authsvc.domain.deps import Deps
from authsvc.domain.identity import attempts, credentials, mfa, qr
from authsvc.domain.identity.bearer import authenticate
from authsvc.domain.identity.login import mfa_aad
from authsvc.domain.models import CallInfo, User
from authsvc.domain.policy import Policy
from authsvc.domain.ports import Store
from authsvc.domain.tokens.kek import Kek
from authsvc.errors import InvalidCredentials, PreconditionFailed


@dataclass(frozen=True, slots=True)
class Enrolment:
    #: ``otpauth://totp/<issuer>:<account>?secret=...&issuer=<issuer>&...``,
    #: the Key URI Format authenticator apps read: issuer in the label and
    #: as a parameter, the account being the username.
    otpauth_uri: str
    secret: str
    qr: qr.QrImages  # the URI as a QR code, SVG and PNG


async def enroll(deps: Deps, bearer: str | None, call: CallInfo) -> Enrolment:
    caller = authenticate(deps, bearer, call, max_auth_age=deps.policy.recent_auth)
    user = await deps.store.user_by_id(caller.sub) if caller.sid else None
    if user is None:
        raise InvalidCredentials()  # service clients have no second factor
    return await start(deps.store, deps.kek, deps.policy, deps.clock, user, actor=user.id, call=call)


async def start(
    store: Store, kek: Kek, policy: Policy, clock: Clock, user: User, *, actor: str, call: CallInfo | None = None
) -> Enrolment:
    """A new TOTP secret for ``user``, pending until the first code confirms it."""
    now = clock.now()
    secret = mfa.new_secret()
    kek_id, sealed = kek.seal(secret.encode("ascii"), mfa_aad(user.id))
    if not await store.start_totp(user.id, kek_id, sealed, now):
        raise PreconditionFailed("MFA is already enrolled")
    await store.audit("mfa_enroll_started", now, outcome=Outcome.OK, actor=actor, subject=user.id, call=call)
    uri = mfa.provisioning_uri(secret, user.username, policy.issuer)
    return Enrolment(uri, secret, qr.images(uri))


async def confirm(deps: Deps, bearer: str | None, code: str, call: CallInfo) -> list[str]:
    validate.text(code, "totp_code", 64)
    caller = authenticate(deps, bearer, call, max_auth_age=deps.policy.recent_auth)
    pending = await deps.store.totp(caller.sub) if caller.sid else None
    if pending is None or pending.confirmed:
        raise PreconditionFailed("no MFA enrolment is pending")
    mfa_key = f"mfa:{caller.sub}"
    await attempts.reserve(deps, [(mfa_key, deps.policy.mfa_limit)], call)
    codes = await finish(deps.store, deps.kek, deps.policy, deps.clock, caller.sub, code, actor=caller.sub, call=call)
    await deps.store.release_throttle(mfa_key, reset=True)
    return codes


async def finish(
    store: Store, kek: Kek, policy: Policy, clock: Clock, user_id: str, code: str, *, actor: str,
    call: CallInfo | None = None,
) -> list[str]:  # fmt: skip
    """Confirm the pending enrolment with its first code; gives the
    single-use recovery codes (shown once, stored hashed)."""
    validate.text(code, "totp_code", 64)
    enrolment = await store.totp(user_id)
    if enrolment is None or enrolment.confirmed:
        raise PreconditionFailed("no MFA enrolment is pending")
    now = clock.now()
    secret = kek.open(enrolment.kek_id, enrolment.secret_sealed, mfa_aad(user_id)).decode("ascii")
    step = mfa.matching_step(secret, code, now, enrolment.last_used_step)
    if step is None:
        await store.audit("mfa_confirm_failed", now, outcome=Outcome.FAILED, actor=actor, subject=user_id, call=call)
        raise InvalidCredentials()
    codes = [credentials.new_recovery_code() for _ in range(policy.recovery_codes)]
    if not await store.confirm_totp(user_id, step, [credentials.digest(c) for c in codes], now):
        raise PreconditionFailed("no MFA enrolment is pending")
    await store.audit("mfa_enrolled", now, outcome=Outcome.OK, actor=actor, subject=user_id, call=call)
    return codes
