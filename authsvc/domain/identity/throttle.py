"""Throttling of password and MFA guesses, with a growing lockout.

An attempt is *reserved* before the credential is checked, in the same row
lock every replica takes, so parallel guesses cannot all read "4 failures"
and all go ahead (the race of GHSA-7h8m-vrxx-vr4m). A success gives the
reservation back; a failure keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Limit:
    max_attempts: int  # failures allowed in one window
    window: float  # seconds
    base_lockout: float  # the first lockout; each further one doubles
    max_lockout: float


@dataclass(frozen=True, slots=True)
class ThrottleState:
    failures: int
    window_start: float
    lockouts: int
    locked_until: float | None


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    state: ThrottleState
    retry_after: float = 0.0


def fresh(now: float) -> ThrottleState:
    return ThrottleState(failures=0, window_start=now, lockouts=0, locked_until=None)


def reserve(state: ThrottleState, limit: Limit, now: float) -> Verdict:
    """Count one attempt against ``state``, or refuse it with the delay to wait."""
    if state.locked_until is not None and state.locked_until > now:
        return Verdict(False, state, state.locked_until - now)
    if now - state.window_start >= limit.window:
        state = replace(state, failures=0, window_start=now)
    if state.failures >= limit.max_attempts:
        lockout = min(limit.base_lockout * 2**state.lockouts, limit.max_lockout)
        locked = ThrottleState(failures=0, window_start=now, lockouts=state.lockouts + 1, locked_until=now + lockout)
        return Verdict(False, locked, lockout)
    return Verdict(True, replace(state, failures=state.failures + 1))


def succeeded(state: ThrottleState, now: float) -> ThrottleState:
    """After a success the account starts afresh (its lockout history too)."""
    return fresh(now)
