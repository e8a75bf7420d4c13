"""One security event, as the audit trail keeps it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

from authsvc.domain.models import CallInfo

#: No field is longer: a peer or a detail is a short fact, never a payload.
MAX_FIELD = 512

#: The last event made in this task: each RPC runs in a task of its own, so
#: its log line can name the subject and request id without asking again.
last_event: ContextVar[AuditEvent | None] = ContextVar("authsvc_last_audit_event", default=None)


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"  # bad credentials, bad code, bad refresh token
    DENIED = "denied"  # authenticated, but not allowed
    DETECTED = "detected"  # an attack noticed (refresh-token reuse)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who did what to whom, from where, with what outcome, and when.

    Never a secret: no token, password, code, key or ciphertext in any field;
    identifiers only (user ids, client ids, session ids, key ids). ``actor`` is
    who acted (a user id, a client id, ``cli:<os user>``, ``system``);
    ``subject`` whom it concerns. Time is kept in whole microseconds, the
    precision of the database, so that a row read back hashes as written.
    """

    event: str
    at_us: int
    outcome: str = ""
    actor: str = ""
    subject: str = ""
    client_id: str = ""
    session_id: str = ""
    peer: str = ""
    request_id: str = ""
    trace_id: str = ""
    detail: str = ""

    @property
    def at(self) -> float:
        return self.at_us / 1_000_000

    @classmethod
    def of(
        cls,
        event: str,
        now: float,
        *,
        call: CallInfo | None = None,
        outcome: str = "",
        actor: str = "",
        subject: str = "",
        client_id: str = "",
        session_id: str = "",
        peer: str = "",
        request_id: str = "",
        trace_id: str = "",
        detail: str = "",
    ) -> AuditEvent:
        """An event at ``now`` (epoch seconds); ``call`` fills the peer and the
        request and trace ids that are not given."""
        if call is not None:
            peer = peer or call.peer
            request_id = request_id or call.request_id
            trace_id = trace_id or call.trace_id
        made = cls(
            event=_cut(event),
            at_us=round(now * 1_000_000),
            outcome=_cut(outcome),
            actor=_cut(actor),
            subject=_cut(subject),
            client_id=_cut(client_id),
            session_id=session_id,
            peer=_cut(peer),
            request_id=_cut(request_id),
            trace_id=_cut(trace_id),
            detail=_cut(detail),
        )
        last_event.set(made)
        return made


def _cut(value: str) -> str:
    return value[:MAX_FIELD]
