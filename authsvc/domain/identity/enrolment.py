"""EnrollMFA and ConfirmMFA: adding TOTP to an account."""

from __future__ import annotations

from dataclasses import dataclass

from authsvc.domain import validate
from authsvc.domain.audit.record import Outcome
from authsvc.domain.deps import Deps
from authsvc.domain.identity import attempts, credentials, mfa
from authsvc.domain.identity.bearer import authenticate
from authsvc.domain.identity.login import mfa_aad
from authsvc.domain.models import CallInfo
from authsvc.errors import InvalidCredentials, PreconditionFailed


@dataclass(frozen=True, slots=True)
class Enrolment:
    otpauth_uri: str
    secret: str


async def enroll(deps: Deps, bearer: str | None, call: CallInfo) -> Enrolment:
    caller = authenticate(deps, bearer, call, max_auth_age=deps.policy.recent_auth)
    user = await deps.store.user_by_id(caller.sub) if caller.sid else None
    if user is None:
        raise InvalidCredentials()  # service clients have no second factor
    now = deps.clock.now()
    secret = mfa.new_secret()
    kek_id, sealed = deps.kek.seal(secret.encode("ascii"), mfa_aad(user.id))
    if not await deps.store.start_totp(user.id, kek_id, sealed, now):
        raise PreconditionFailed("MFA is already enrolled")
    await deps.store.audit("mfa_enroll_started", now, outcome=Outcome.OK, actor=user.id, subject=user.id, call=call)
    return Enrolment(mfa.provisioning_uri(secret, user.username, deps.policy.issuer), secret)


async def confirm(deps: Deps, bearer: str | None, code: str, call: CallInfo) -> list[str]:
    validate.text(code, "totp_code", 64)
    caller = authenticate(deps, bearer, call, max_auth_age=deps.policy.recent_auth)
    enrolment = await deps.store.totp(caller.sub) if caller.sid else None
    if enrolment is None or enrolment.confirmed:
        raise PreconditionFailed("no MFA enrolment is pending")
    mfa_key = f"mfa:{caller.sub}"
    await attempts.reserve(deps, [(mfa_key, deps.policy.mfa_limit)], call)
    now = deps.clock.now()
    secret = deps.kek.open(enrolment.kek_id, enrolment.secret_sealed, mfa_aad(caller.sub)).decode("ascii")
    step = mfa.matching_step(secret, code, now, enrolment.last_used_step)
    if step is None:
        await deps.store.audit(
            "mfa_confirm_failed", now, outcome=Outcome.FAILED, actor=caller.sub, subject=caller.sub, call=call
        )
        raise InvalidCredentials()
    codes = [credentials.new_recovery_code() for _ in range(deps.policy.recovery_codes)]
    hashes = [credentials.digest(c) for c in codes]
    if not await deps.store.confirm_totp(caller.sub, step, hashes, now):
        raise PreconditionFailed("no MFA enrolment is pending")
    await deps.store.release_throttle(mfa_key, reset=True)
    await deps.store.audit("mfa_enrolled", now, outcome=Outcome.OK, actor=caller.sub, subject=caller.sub, call=call)
    return codes
