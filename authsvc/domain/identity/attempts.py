"""Applying the throttle to a login or an MFA attempt."""

from __future__ import annotations

from collections.abc import Sequence

from authsvc.domain import security
from authsvc.domain.audit.record import Outcome
from authsvc.domain.deps import Deps
from authsvc.domain.identity import throttle
from authsvc.domain.identity.throttle import Limit, ThrottleState
from authsvc.domain.models import CallInfo
from authsvc.errors import Throttled


def peer_key(peer: str) -> str:
    """The address without its port: "ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7"."""
    if peer.startswith("ipv6:[") and "]" in peer:
        return peer[: peer.index("]") + 1]
    head, sep, port = peer.rpartition(":")
    return head if sep and port.isdigit() and head.count(":") >= 1 else peer


async def reserve(deps: Deps, limits: Sequence[tuple[str, Limit]], call: CallInfo | None = None) -> None:
    """Reserve one attempt on every key, or none: raise Throttled with the
    longest wait when any key refuses. A lockout that starts is audited and
    logged."""
    now = deps.clock.now()
    by_key = dict(limits)
    started: list[tuple[str, float]] = []

    def decide(states: dict[str, ThrottleState]) -> tuple[dict[str, ThrottleState], float]:
        verdicts = {key: throttle.reserve(state, by_key[key], now) for key, state in states.items()}
        refused = {key: v for key, v in verdicts.items() if not v.allowed}
        started.extend((k, v.retry_after) for k, v in refused.items() if v.state.lockouts > states[k].lockouts)
        if refused:
            # Only the refusing counters change (a lockout may start); the
            # others are not charged for an attempt that never happens.
            return {k: v.state for k, v in refused.items()}, max(v.retry_after for v in refused.values())
        return {k: v.state for k, v in verdicts.items()}, 0.0

    wait = await deps.store.update_throttles(list(by_key), now, decide)
    for key, seconds in started:
        await _lockout_started(deps, now, key, seconds, call)
    if wait > 0:
        raise Throttled(wait)


async def _lockout_started(deps: Deps, now: float, key: str, seconds: float, call: CallInfo | None) -> None:
    # Keys are "<kind>:<what>"; only an MFA key names a subject (a user id).
    # An account key holds the name given, which is never recorded.
    kind, _, what = key.partition(":")
    subject = what if kind == "mfa" else ""
    await deps.store.audit(
        "lockout_started", now, outcome=Outcome.DENIED, subject=subject, call=call,
        detail=f"limit={kind} seconds={seconds:.0f}",
    )  # fmt: skip
    security.lockout(kind, subject, seconds, call)
