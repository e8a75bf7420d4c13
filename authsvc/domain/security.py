"""Log lines for operators about security events: failed logins, lockouts,
refresh-token reuse. The event and whom it concerns, never the secret: no
token, password or code, and not the name a failed login gave (it may be a
password typed in the wrong field). The audit trail keeps the full record;
these lines are for alerting on the log stream."""

from __future__ import annotations

import logging
from collections import Counter

from authsvc.domain.models import CallInfo

log = logging.getLogger("authsvc.security")

#: How many of each event this process saw (Prometheus reads it at scrape time).
COUNTS: Counter[str] = Counter()


def _fields(event: str, subject: str, call: CallInfo | None, **more: str) -> dict[str, str]:
    fields = {"security_event": event, "subject": subject, **more}
    if call is not None:
        fields |= {"peer": call.peer, "request_id": call.request_id}
    return fields


def login_failed(method: str, subject: str, reason: str, call: CallInfo) -> None:
    COUNTS["login_failed"] += 1
    log.warning(
        "login failed: method=%s subject=%s reason=%s peer=%s",
        method, subject or "-", reason, call.peer,
        extra=_fields("login_failed", subject, call, method=method, reason=reason),
    )  # fmt: skip


def lockout(kind: str, subject: str, seconds: float, call: CallInfo | None) -> None:
    COUNTS["lockout"] += 1
    log.warning(
        "lockout started: %s subject=%s for %.0fs",
        kind, subject or "-", seconds,
        extra=_fields("lockout", subject, call, limit=kind),
    )  # fmt: skip


def refresh_reuse(subject: str, session_id: str, call: CallInfo) -> None:
    COUNTS["refresh_reuse_detected"] += 1
    log.warning(
        "refresh token reuse detected: subject=%s session=%s revoked, peer=%s",
        subject, session_id, call.peer,
        extra=_fields("refresh_reuse_detected", subject, call, session_id=session_id),
    )  # fmt: skip
