"""TOTP (RFC 6238) with pyotp: secrets, provisioning URIs, and codes that are
accepted once only."""

from __future__ import annotations

import hmac

import pyotp

STEP_SECONDS = 30
DIGITS = 6
#: Steps accepted either side of now, for clock drift (RFC 6238 section 5.2).
DRIFT_STEPS = 1


def new_secret() -> str:
    return str(pyotp.random_base32(length=32))  # 160 bits, as RFC 4226 recommends


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    return str(totp.provisioning_uri(name=account, issuer_name=issuer))


def matching_step(secret: str, code: str, now: float, last_used_step: int) -> int | None:
    """The time step ``code`` belongs to, if it is within drift and newer than
    ``last_used_step``; else None. The caller must record the step atomically."""
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(now) // STEP_SECONDS
    found: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Compare every candidate, so the time taken does not say which matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and step > last_used_step:
            found = step
    return found
