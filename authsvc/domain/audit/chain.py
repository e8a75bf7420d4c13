"""The rules that make the audit trail tamper-evident.

Every row has a position ``seq`` (1, 2, 3, ... with no gaps) and carries the
hash of the row before it (``prev_hash``) and its own ``hash``::

    digest = SHA-256(RFC 8785 canonical JSON of the event's fields)
    hash   = SHA-256(prev_hash || seq as 8 bytes, big-endian || digest)

The first row's ``prev_hash`` is 32 zero bytes (``GENESIS``). Editing a row
breaks its own hash; rewriting its hash too breaks the next row's link;
deleting a row leaves a gap in ``seq``; an inserted row has no place in the
sequence, or its hash does not follow. The store keeps the last (seq, hash),
the chain head, in a row that every append updates under its row lock, so
appends from any number of replicas form one sequence; a deletion at the end
shows against it. Pruning the old end leaves a checkpoint, the (seq, hash)
at the cut, where verification starts.

There are ``LANES`` such chains side by side, each with its own head and
checkpoint; a transaction appends to its database connection's lane. One
chain would make every audited write in the cluster wait on one row lock
held to the previous write's commit (see migration 0014 for the figures).
Here ``seq`` is a row's place in its lane.

The canonical JSON (RFC 8785) is a standard, so an auditor can recompute a
row's hash with any JCS implementation and ``sha256``; ``v`` names this
encoding so that it can change without rewriting old rows.

What a hash chain cannot show: someone able to write the database who
recomputes every hash from the edit onwards, and the head. Against that,
keep a copy of the head elsewhere (``authsvc audit verify`` prints it) and
compare: every earlier state of the chain is a prefix of the later one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import rfc8785

from authsvc.domain.audit.record import AuditEvent

GENESIS = bytes(32)
ENCODING_VERSION = 1
#: Chains side by side (heads 1..LANES); the migration that made them says why.
LANES = 16


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A point on the chain: the last row's (seq, hash) at the head, or the
    last pruned row's at the checkpoint. (0, GENESIS) before any row."""

    seq: int = 0
    hash: bytes = GENESIS


@dataclass(frozen=True, slots=True)
class ChainRow:
    seq: int  # the row's place in its lane
    prev_hash: bytes
    hash: bytes
    event: AuditEvent
    lane: int = 1


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, at ``seq`` (the first of ``seq``..``last`` when a run
    of rows is missing). ``kind`` is one of: edited, broken-link, deleted,
    inserted, head-mismatch."""

    seq: int
    kind: str
    message: str
    last: int = 0
    lane: int = 1

    def __str__(self) -> str:
        where = f"seq {self.seq}" if not self.last or self.last == self.seq else f"seq {self.seq}..{self.last}"
        return f"lane {self.lane} {where}: {self.kind}: {self.message}"


def canonical(event: AuditEvent) -> bytes:
    """The event's fields as RFC 8785 canonical JSON (sorted keys, no
    whitespace, one spelling for every string): the bytes that are hashed."""
    return rfc8785.dumps(
        {
            "v": ENCODING_VERSION,
            "at_us": event.at_us,
            "event": event.event,
            "outcome": event.outcome,
            "actor": event.actor,
            "subject": event.subject,
            "client_id": event.client_id,
            "session_id": event.session_id,
            "peer": event.peer,
            "request_id": event.request_id,
            "trace_id": event.trace_id,
            "detail": event.detail,
        }
    )


def digest(event: AuditEvent) -> bytes:
    return hashlib.sha256(canonical(event)).digest()


def link(prev_hash: bytes, seq: int, event_digest: bytes) -> bytes:
    """A row's hash. The store computes the same in SQL when it appends
    (``sha256(prev || int8send(seq) || digest)``), under the head's lock, where
    ``prev`` and ``seq`` are known; the event's digest comes from here."""
    return hashlib.sha256(prev_hash + seq.to_bytes(8, "big", signed=True) + event_digest).digest()


@dataclass(slots=True)
class ChainVerifier:
    """Walks the rows in ``seq`` order from the checkpoint to the head and
    collects every problem; nothing stops it, so one report names them all."""

    checkpoint: Checkpoint
    head: Checkpoint
    lane: int = 1
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    _seq: int = 0
    _hash: bytes = GENESIS

    def __post_init__(self) -> None:
        self._seq, self._hash = self.checkpoint.seq, self.checkpoint.hash

    def feed(self, row: ChainRow) -> None:
        self.rows += 1
        if row.seq <= self.checkpoint.seq:
            self._add(row.seq, "inserted", f"at or before the checkpoint (seq {self.checkpoint.seq})")
            return
        if row.seq <= self._seq:
            self._add(row.seq, "inserted", "a second row with this seq")
            return
        if row.seq > self.head.seq:
            self._add(row.seq, "inserted", f"beyond the chain head (seq {self.head.seq})")
            return
        gap = row.seq > self._seq + 1
        if gap:
            self._add(self._seq + 1, "deleted", "rows missing", last=row.seq - 1)
        if link(row.prev_hash, row.seq, digest(row.event)) != row.hash:
            self._add(row.seq, "edited", "the row does not match its hash")
        elif not gap and row.prev_hash != self._hash:
            before = f"seq {self._seq}" if self._seq > self.checkpoint.seq else "the checkpoint"
            self._add(row.seq, "broken-link", f"does not follow {before}: one of them was rewritten or forged")
        self._seq, self._hash = row.seq, row.hash

    def finish(self) -> list[Problem]:
        if self._seq < self.head.seq:
            self._add(self._seq + 1, "deleted", "rows missing at the end", last=self.head.seq)
        elif self._seq == self.head.seq and self._hash != self.head.hash:
            self._add(self._seq, "head-mismatch", "the last row's hash is not the chain head's")
        return self.problems

    def _add(self, seq: int, kind: str, message: str, last: int = 0) -> None:
        self.problems.append(Problem(seq, kind, message, last, self.lane))
